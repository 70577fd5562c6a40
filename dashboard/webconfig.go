package dashboard

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/exporter-toolkit/web"
	"go.yaml.in/yaml/v2"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/time/rate"

	"livedash/dashboard/apierr"
)

// WebConfig is a Prometheus exporter-toolkit web configuration file
// (--web.config.file, http.web_config_file) as the server applies it:
// read and checked once at start-up by LoadWebConfig; only the certificate
// and key files are read again, when they change on disk (certificate
// rotation without a restart). The toolkit's own handler re-reads the whole
// file on every request and wraps every path, /healthz included; the server
// applies the same settings in its one middleware chain instead.
type WebConfig struct {
	// TLS is the server's TLS configuration; nil serves plain HTTP.
	TLS *tls.Config
	// HTTP2 offers h2 over TLS (http_server_config.http2, default true).
	HTTP2 bool
	// Headers are set on every response (http_server_config.headers).
	Headers map[string]string
	// Users maps a user name to its bcrypt hash (basic_auth_users). With
	// users, every route but /healthz and /readyz needs their credentials.
	Users map[string][]byte
	// Limiter is rate_limit: one token bucket for the whole server, 429
	// when empty; nil when the file sets none.
	Limiter *rate.Limiter
}

// LoadWebConfig reads and checks the web configuration file at path. Every
// error names the file and the problem; there is no fallback: a file that
// asks for TLS either yields a TLS configuration or an error.
func LoadWebConfig(path string) (*WebConfig, error) {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("web config %s: %s", path, fmt.Sprintf(format, args...))
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("web config: %w", err)
	}
	// The toolkit's defaults, then its strict YAML decoding (an unknown key
	// is an error naming the key and the line).
	c := web.Config{
		TLSConfig:  web.TLSConfig{MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS13},
		HTTPConfig: web.HTTPConfig{HTTP2: true},
	}
	if err := yaml.UnmarshalStrict(data, &c); err != nil {
		return nil, fail("%v", err)
	}
	users := make(map[string][]byte, len(c.Users))
	names := make([]string, 0, len(c.Users))
	for name := range c.Users {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		hash := []byte(c.Users[name])
		if _, err := bcrypt.Cost(hash); err != nil {
			return nil, fail("basic_auth_users: user %q: the password must be a bcrypt hash, e.g. from `htpasswd -nBC 10 %s` (%v)", name, name, err)
		}
		users[name] = hash
	}
	// The toolkit's own check covers what is not modelled here (the
	// headers that may be set and their values, among others).
	if err := web.Validate(path); err != nil {
		return nil, fail("%v", err)
	}
	wc := &WebConfig{HTTP2: c.HTTPConfig.HTTP2, Headers: c.HTTPConfig.Header, Users: users}
	if c.RateLimiterConfig.Interval > 0 {
		wc.Limiter = rate.NewLimiter(rate.Every(c.RateLimiterConfig.Interval), max(c.RateLimiterConfig.Burst, 1))
	}
	if !c.TLSConfig.IsEnabled() {
		return wc, nil
	}
	if c.TLSConfig.MinVersion > c.TLSConfig.MaxVersion {
		return nil, fail("tls_server_config: min_version is above max_version")
	}
	c.TLSConfig.SetDirectory(filepath.Dir(path))
	tc, err := web.ConfigToTLSConfig(&c.TLSConfig)
	if err != nil {
		return nil, fail("tls_server_config: %v", err)
	}
	if c.TLSConfig.TLSCertPath != "" && c.TLSConfig.TLSKeyPath != "" {
		cc := &certCache{files: []string{c.TLSConfig.TLSCertPath, c.TLSConfig.TLSKeyPath}, load: tc.GetCertificate}
		tc.GetCertificate = cc.get
	} else {
		// Inline certificate and key never change: parse them once.
		cert, err := tc.GetCertificate(nil)
		if err != nil {
			return nil, fail("tls_server_config: %v", err)
		}
		tc.GetCertificate = nil
		tc.Certificates = []tls.Certificate{*cert}
	}
	wc.TLS = tc
	return wc, nil
}

// LimitRate applies rate_limit, one token bucket for the whole server:
// nil while a token is left (or when the file sets no limit), else the 429
// to answer, with Retry-After set in h (the response's header).
func (wc *WebConfig) LimitRate(h http.Header) *apierr.Error {
	if wc.Limiter == nil || wc.Limiter.Allow() {
		return nil
	}
	h.Set("Retry-After", "1")
	return apierr.New(http.StatusTooManyRequests, "rate_limited", "the server's request rate limit is reached; retry later")
}

// certCache serves the certificate parsed from files until one of them
// changes (size or modification time), then parses them again: the
// toolkit's loader reads and parses both files on every handshake, which
// would make every new connection of a busy server pay for a key parse.
// If a reload fails (a half-written file during rotation), handshakes
// fail until the files are whole again, as with the toolkit.
type certCache struct {
	files []string
	load  func(*tls.ClientHelloInfo) (*tls.Certificate, error)

	mu    sync.Mutex
	stamp string
	cert  *tls.Certificate
}

func (cc *certCache) get(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	stamp := ""
	for _, f := range cc.files {
		st, err := os.Stat(f)
		if err != nil {
			return nil, fmt.Errorf("certificate: %w", err)
		}
		stamp += strconv.FormatInt(st.Size(), 10) + "@" + strconv.FormatInt(st.ModTime().UnixNano(), 10) + ";"
	}
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.cert != nil && cc.stamp == stamp {
		return cc.cert, nil
	}
	cert, err := cc.load(hello)
	if err != nil {
		return nil, err
	}
	cc.cert, cc.stamp = cert, stamp
	return cert, nil
}

// Authenticator checks basic-auth credentials against the web
// configuration's bcrypt hashes (basic_auth_users). A bcrypt comparison
// costs tens of milliseconds of CPU by design, so its result is cached per
// credential (user and password, kept only as a SHA-256 digest): a browser
// sends the same credentials with every request and pays once. Concurrent
// requests with the same uncached credential wait for one comparison;
// comparisons of different credentials run at most one per core at once,
// so a flood of guesses cannot starve the server.
type Authenticator struct {
	users map[string][]byte
	dummy []byte // compared for unknown users, so they take as long as known ones

	slots    chan struct{}
	compared prometheus.Counter // bcrypt comparisons run: cache misses; nil: not counted
	mu       sync.Mutex
	cache    map[[32]byte]*authResult
}

// authCacheSize bounds the cached credentials; beyond it a tenth of the
// entries, chosen by map order, are dropped.
const authCacheSize = 4096

type authResult struct {
	done chan struct{} // closed when ok is set
	ok   bool
}

// NewAuthenticator checks credentials against users (name to bcrypt hash)
// and counts the bcrypt comparisons it runs in compared, unless that is nil.
func NewAuthenticator(users map[string][]byte, compared prometheus.Counter) *Authenticator {
	cost := bcrypt.DefaultCost
	for _, h := range users {
		if c, err := bcrypt.Cost(h); err == nil && c > cost {
			cost = c
		}
	}
	dummy, err := bcrypt.GenerateFromPassword([]byte(rand.Text()), cost)
	if err != nil {
		panic(fmt.Sprintf("bcrypt: %v", err)) // only for a cost out of range, checked above
	}
	return &Authenticator{users: users, dummy: dummy, slots: make(chan struct{}, runtime.GOMAXPROCS(0)), compared: compared, cache: map[[32]byte]*authResult{}}
}

// Authorize answers whether r may pass: nil when it carries a configured
// user's credentials; otherwise the 401 to answer, with the challenge set
// in h (the response's header), which names the realm so that browsers ask
// once and then send the credentials with every request of the origin.
func (a *Authenticator) Authorize(r *http.Request, h http.Header) *apierr.Error {
	if user, password, ok := r.BasicAuth(); ok && a.check(user, password) {
		return nil
	}
	h.Set("WWW-Authenticate", `Basic realm="livedash"`)
	return apierr.New(http.StatusUnauthorized, "unauthorized", "log in: this server needs a user name and password (HTTP basic authentication)")
}

// check reports whether user and password are a configured user's.
func (a *Authenticator) check(user, password string) bool {
	k := credentialKey(user, password)
	a.mu.Lock()
	r := a.cache[k]
	if r != nil {
		a.mu.Unlock()
		<-r.done
		return r.ok
	}
	if len(a.cache) >= authCacheSize {
		drop := authCacheSize / 10
		for key := range a.cache {
			delete(a.cache, key)
			if drop--; drop <= 0 {
				break
			}
		}
	}
	r = &authResult{done: make(chan struct{})}
	a.cache[k] = r
	a.mu.Unlock()

	hash, known := a.users[user]
	if !known {
		hash = a.dummy
	}
	a.slots <- struct{}{}
	err := bcrypt.CompareHashAndPassword(hash, []byte(password))
	<-a.slots
	if a.compared != nil {
		a.compared.Inc()
	}
	r.ok = known && err == nil
	close(r.done)
	return r.ok
}

// credentialKey is the cache key of a credential: a digest, so that the
// cache holds no password.
func credentialKey(user, password string) [32]byte {
	b := make([]byte, 0, 8+len(user)+len(password))
	b = strconv.AppendInt(b, int64(len(user)), 10)
	b = append(b, ':')
	b = append(b, user...)
	b = append(b, password...)
	return sha256.Sum256(b)
}
