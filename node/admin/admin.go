package admin

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/skein-mq/skein/node"
)

// Prefix is the path under which the API is served.
const Prefix = "/api/v1"

// Paging defaults and bounds of the list endpoints.
const (
	DefaultLimit = 50
	MaxLimit     = 1000
)

// DefaultMaxBodyBytes bounds a request body unless Config says otherwise: room for
// a base64-encoded payload of the broker's default maximum packet size (1 MiB).
const DefaultMaxBodyBytes = 4 << 20

// Config configures the API handler.
type Config struct {
	// Broker is the node the API reads and acts on. Required.
	Broker *node.Broker
	// NodeName names this node in every answer; empty means "local".
	NodeName string
	// User and Password, when set (both or neither), admit requests with HTTP basic
	// auth.
	User, Password string
	// APIKeys admit requests with "Authorization: Bearer KEY".
	APIKeys []string
	// MaxBodyBytes bounds a request body; 0 means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Logger receives the API's logs; nil discards them.
	Logger *slog.Logger
	// Cluster, when set, serves GET Prefix+"/cluster" behind the same credentials
	// (the node package cannot see the cluster; cmd provides the handler).
	Cluster http.Handler
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	var errs []error
	if c.Broker == nil {
		errs = append(errs, errors.New("broker: required"))
	}
	if (c.User == "") != (c.Password == "") {
		errs = append(errs, errors.New("user and password: set both or neither"))
	}
	if strings.Contains(c.User, ":") {
		errs = append(errs, errors.New("user: must not contain ':' (basic auth)"))
	}
	for i, k := range c.APIKeys {
		if k == "" || strings.ContainsFunc(k, unicode.IsSpace) {
			errs = append(errs, fmt.Errorf("api key %d: empty or contains white space", i+1))
		}
	}
	if c.MaxBodyBytes < 0 {
		errs = append(errs, fmt.Errorf("max body bytes %d: must not be negative", c.MaxBodyBytes))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("admin config: %w", err)
	}
	return nil
}

// ParseKeys reads an API key file: one key per line; blank lines and lines starting
// with '#' are skipped, surrounding white space is trimmed. A file without any key
// is an error, so a mistaken path cannot leave the API open.
func ParseKeys(data []byte) ([]string, error) {
	var keys []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	line := 0
	for sc.Scan() {
		line++
		k := strings.TrimSpace(sc.Text())
		if k == "" || strings.HasPrefix(k, "#") {
			continue
		}
		if strings.ContainsFunc(k, unicode.IsSpace) {
			return nil, fmt.Errorf("admin: api key file line %d: a key must not contain white space", line)
		}
		keys = append(keys, k)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("admin: api key file: %w", err)
	}
	if len(keys) == 0 {
		return nil, errors.New("admin: api key file holds no key")
	}
	return keys, nil
}

// api serves the endpoints; see routes.
type api struct {
	b       *node.Broker
	name    string
	log     *slog.Logger
	maxBody int64
	// Credentials are kept as SHA-256 digests and compared in constant time, so
	// neither their content nor their length shows in response times.
	userHash, passHash [32]byte
	basic              bool
	keyHashes          [][32]byte
}

// New returns the handler of the API. Its patterns are the full paths, starting
// with Prefix: mount it on Prefix+"/".
func New(cfg Config) (http.Handler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	a := &api{
		b:       cfg.Broker,
		name:    cfg.NodeName,
		log:     cfg.Logger,
		maxBody: cfg.MaxBodyBytes,
	}
	if a.name == "" {
		a.name = "local"
	}
	if a.log == nil {
		a.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if a.maxBody == 0 {
		a.maxBody = DefaultMaxBodyBytes
	}
	if cfg.User != "" {
		a.basic = true
		a.userHash = sha256.Sum256([]byte(cfg.User))
		a.passHash = sha256.Sum256([]byte(cfg.Password))
	}
	for _, k := range cfg.APIKeys {
		a.keyHashes = append(a.keyHashes, sha256.Sum256([]byte(k)))
	}
	if !a.basic && len(a.keyHashes) == 0 {
		a.log.Warn("admin API has no credentials: anyone who reaches the HTTP address can use it")
	}
	mux := a.routes()
	if cfg.Cluster != nil {
		mux.Handle(Prefix+"/cluster", cfg.Cluster)
	}
	return a.authenticate(mux), nil
}

// routes maps every path to its methods. Method dispatch is done here rather than in
// the mux patterns so that a wrong method gets a JSON 405 like every other error.
func (a *api) routes() *http.ServeMux {
	mux := http.NewServeMux()
	handle := func(path string, methods map[string]http.HandlerFunc) {
		allow := make([]string, 0, len(methods))
		for m := range methods {
			allow = append(allow, m)
		}
		slices.Sort(allow)
		allowed := strings.Join(allow, ", ")
		mux.HandleFunc(Prefix+path, func(w http.ResponseWriter, r *http.Request) {
			h := methods[r.Method]
			if h == nil && r.Method == http.MethodHead {
				h = methods[http.MethodGet]
			}
			if h == nil {
				w.Header().Set("Allow", allowed)
				writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed; use %s", r.Method, allowed))
				return
			}
			h(w, r)
		})
	}
	handle("/nodes", map[string]http.HandlerFunc{http.MethodGet: a.nodes})
	handle("/stats", map[string]http.HandlerFunc{http.MethodGet: a.stats})
	handle("/clients", map[string]http.HandlerFunc{http.MethodGet: a.listClients})
	handle("/clients/{id}", map[string]http.HandlerFunc{http.MethodGet: a.showClient, http.MethodDelete: a.kickClient})
	handle("/subscriptions", map[string]http.HandlerFunc{http.MethodGet: a.listSubscriptions})
	handle("/routes", map[string]http.HandlerFunc{http.MethodGet: a.listRoutes})
	handle("/retained", map[string]http.HandlerFunc{http.MethodGet: a.listRetained})
	handle("/retained/{topic...}", map[string]http.HandlerFunc{http.MethodGet: a.showRetained, http.MethodDelete: a.deleteRetained})
	handle("/publish", map[string]http.HandlerFunc{http.MethodPost: a.publish})
	mux.HandleFunc(Prefix+"/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint: "+r.URL.Path)
	})
	return mux
}

// authenticate admits a request with valid basic auth or a valid bearer key, and
// every request when neither is configured.
func (a *api) authenticate(next http.Handler) http.Handler {
	if !a.basic && len(a.keyHashes) == 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.authorized(r) {
			next.ServeHTTP(w, r)
			return
		}
		a.log.Debug("admin API: authentication failed", "remote", r.RemoteAddr, "path", r.URL.Path)
		var challenges []string
		if a.basic {
			challenges = append(challenges, `Basic realm="skein", charset="UTF-8"`)
		}
		if len(a.keyHashes) > 0 {
			challenges = append(challenges, `Bearer realm="skein"`)
		}
		for _, c := range challenges {
			w.Header().Add("WWW-Authenticate", c)
		}
		writeError(w, http.StatusUnauthorized, "authentication required")
	})
}

func (a *api) authorized(r *http.Request) bool {
	if a.basic {
		if user, pass, ok := r.BasicAuth(); ok {
			u, p := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(pass))
			// Both comparisons run whatever the first gives.
			uok := subtle.ConstantTimeCompare(u[:], a.userHash[:])
			pok := subtle.ConstantTimeCompare(p[:], a.passHash[:])
			if uok&pok == 1 {
				return true
			}
		}
	}
	if len(a.keyHashes) > 0 {
		scheme, key, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		if ok && strings.EqualFold(scheme, "Bearer") {
			h := sha256.Sum256([]byte(strings.TrimSpace(key)))
			found := 0
			for _, kh := range a.keyHashes {
				found |= subtle.ConstantTimeCompare(h[:], kh[:])
			}
			if found == 1 {
				return true
			}
		}
	}
	return false
}

// Error is the body of every error answer.
type Error struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		// Every answer type marshals; this is a programmer error, reported as one.
		status = http.StatusInternalServerError
		body, _ = json.Marshal(Error{Error: "encode answer: " + err.Error()}) // a string always marshals
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n')) // a failed write means the client left
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, Error{Error: msg})
}

// fail answers err with the status its kind calls for.
func (a *api) fail(w http.ResponseWriter, r *http.Request, err error) {
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, node.ErrInvalid):
		status = http.StatusBadRequest
	case errors.Is(err, errTooLarge):
		status = http.StatusRequestEntityTooLarge
	case errors.Is(err, node.ErrClosed):
		status = http.StatusServiceUnavailable
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		status = http.StatusServiceUnavailable
	}
	if status == http.StatusInternalServerError {
		a.log.Error("admin API request failed", "path", r.URL.Path, "err", err)
	}
	writeError(w, status, err.Error())
}

// paging reads page and limit from the query.
type paging struct{ page, limit int }

func readPaging(r *http.Request) (paging, error) {
	p := paging{page: 1, limit: DefaultLimit}
	q := r.URL.Query()
	if s := q.Get("page"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return p, fmt.Errorf("page %q: must be a whole number from 1", s)
		}
		p.page = n
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxLimit {
			return p, fmt.Errorf("limit %q: must be a whole number from 1 to %d", s, MaxLimit)
		}
		p.limit = n
	}
	return p, nil
}

// Meta describes one page of a list.
type Meta struct {
	Page  int `json:"page"`
	Limit int `json:"limit"`
	// Count is the number of items matching the filters, over all pages.
	Count int `json:"count"`
}

// Page is the answer of a list endpoint.
type Page[T any] struct {
	Data []T  `json:"data"`
	Meta Meta `json:"meta"`
}

// pageOf cuts one page out of all, converting only the items on it.
func pageOf[S, T any](p paging, all []S, conv func(S) T) Page[T] {
	out := Page[T]{Data: []T{}, Meta: Meta{Page: p.page, Limit: p.limit, Count: len(all)}}
	start := (p.page - 1) * p.limit
	if start >= len(all) {
		return out
	}
	end := min(start+p.limit, len(all))
	for _, s := range all[start:end] {
		out.Data = append(out.Data, conv(s))
	}
	return out
}

// readBody decodes a JSON request body into v, refusing unknown fields and bodies
// over the limit.
func (a *api) readBody(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, a.maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return fmt.Errorf("%w: request body over %d bytes", errTooLarge, tooLarge.Limit)
		}
		return fmt.Errorf("%w: request body: %w", node.ErrInvalid, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: request body: more than one JSON value", node.ErrInvalid)
	}
	return nil
}

var errTooLarge = errors.New("admin: too large")
