// worker.js — the SharedWorker that holds the browser's one livedash
// connection. Every tab of the origin connects to it with a MessagePort; the
// worker lives as long as one tab does, so closing nine of ten tabs keeps the
// stream, and the last one closing ends it.
//
// Port protocol (tab → worker): {type:'need', after:<id|null>, transport:<the
// session's last>}, {type:'topics', topics:[…]|null} (what the tab shows),
// {type:'bye'}, {type:'debug'}. Worker → tab: see Hub in client.js, plus
// {type:'debug', hub}.
import { Hub } from './client.js';

// The origin, not a relative URL: it never carries user info (see main.js).
const hub = new Hub({ base: self.location.origin });

// Ports of tabs that crashed cannot tell us; posting to them is harmless, and
// a port that throws is dropped.
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
