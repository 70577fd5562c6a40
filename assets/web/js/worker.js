// worker.js — the SharedWorker holding the browser's one connection for
// every tab of the origin. assets/PAGE.md, The connection.
import { Hub } from './client.js';

// The origin, not a relative URL: it never carries user info (see main.js).
const hub = new Hub({ base: self.location.origin });

// a port that throws (its tab crashed) is dropped
function subscriber(port) {
  return {
    post(msg) {
      try { port.postMessage(msg); } catch { hub.remove(this); }
    },
  };
}

self.onconnect = (e) => {
  const port = e.ports[0];
  const sub = subscriber(port);
  port.onmessage = (m) => {
    const msg = m.data || {};
    if (msg.type === 'need') hub.need(sub, msg.after, msg.transport);
    else if (msg.type === 'topics') hub.setTopics(sub, msg.topics);
    else if (msg.type === 'bye') hub.remove(sub);
    else if (msg.type === 'debug') port.postMessage({ type: 'debug', hub: hub.status() });
  };
  port.start();
  hub.add(sub);
};
