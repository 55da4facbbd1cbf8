package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// The engine's REST API:
//
//	POST   /functions                 deploy: a Function as JSON (image, or
//	                                  template: a template file's path)
//	GET    /functions                 list, with instance counts
//	GET    /functions/{name}          one
//	DELETE /functions/{name}          stop its instances, forget it
//	PUT    /functions/{name}/scale    {"instances": N}: start or stop idle ones
//	POST   /functions/{name}/invoke   invoke: the request goes to the
//	                                  function as POST /
//	ANY    /fn/{name}/{path...}       invoke: passed through as /{path}
//	GET    /metrics                   Prometheus' text format
//	GET    /healthz                   "ok"
//
// Errors are JSON: {"error": "..."} with a status that says whose fault
// it is (4xx the caller's, 502/504 the function's, 503 capacity).

// Handler is the engine's HTTP API.
func (e *Engine) Handler() http.Handler { return e.http }

// TemplateBuilder, when set, builds a template file into an image in
// the backend's containerd (cmd/fre sets it: fnimage and the import).
type TemplateBuilder func(ctx context.Context, path string, f *Function) error

// SetTemplateBuilder lets deploys name a template instead of an image.
func (e *Engine) SetTemplateBuilder(b TemplateBuilder) { e.build = b }

func (e *Engine) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		e.writeMetrics(w)
	})
	mux.HandleFunc("POST /functions", e.handleDeploy)
	mux.HandleFunc("GET /functions", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, e.List()) })
	mux.HandleFunc("GET /functions/{name}", func(w http.ResponseWriter, r *http.Request) {
		fn, err := e.get(r.PathValue("name"))
		if err != nil {
			e.fail(w, r, err)
			return
		}
		writeJSON(w, 200, fn.status())
	})
	mux.HandleFunc("DELETE /functions/{name}", func(w http.ResponseWriter, r *http.Request) {
		if err := e.Remove(r.Context(), r.PathValue("name")); err != nil {
			e.fail(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("PUT /functions/{name}/scale", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Instances *int `json:"instances"`
		}
		if err := decodeJSON(r, e.cfg.MaxBody, &req); err != nil || req.Instances == nil {
			e.fail(w, r, fmt.Errorf("%w: want {\"instances\": N}", ErrBadRequest))
			return
		}
		st, err := e.Scale(r.Context(), r.PathValue("name"), *req.Instances)
		if err != nil {
			e.fail(w, r, err)
			return
		}
		writeJSON(w, 200, st)
	})
	mux.HandleFunc("POST /functions/{name}/invoke", func(w http.ResponseWriter, r *http.Request) {
		e.invoke(w, r, r.PathValue("name"), "/")
	})
	mux.HandleFunc("/fn/{name}/{path...}", func(w http.ResponseWriter, r *http.Request) {
		e.invoke(w, r, r.PathValue("name"), "/"+r.PathValue("path"))
	})
	return mux
}

func (e *Engine) handleDeploy(w http.ResponseWriter, r *http.Request) {
	var f Function
	if err := decodeJSON(r, e.cfg.MaxBody, &f); err != nil {
		e.fail(w, r, fmt.Errorf("%w: %v", ErrBadRequest, err))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Minute)
	defer cancel()
	if f.Template != "" {
		if e.build == nil {
			e.fail(w, r, fmt.Errorf("%w: this engine builds no templates", ErrBadRequest))
			return
		}
		if f.Image != "" {
			e.fail(w, r, fmt.Errorf("%w: image and template both given", ErrBadRequest))
			return
		}
		if err := e.build(ctx, f.Template, &f); err != nil {
			e.fail(w, r, fmt.Errorf("%w: template %s: %v", ErrBadRequest, f.Template, err))
			return
		}
	}
	out, err := e.Deploy(ctx, f)
	if err != nil {
		e.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, out)
}

// hop-by-hop headers are not passed on (RFC 9110 7.6.1).
var hopByHop = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// invoke passes one request to an instance of the function and its
// answer back.
func (e *Engine) invoke(w http.ResponseWriter, r *http.Request, name, path string) {
	t0 := time.Now()
	fn, err := e.get(name)
	if err != nil {
		e.fail(w, r, err)
		return
	}
	// The body is read first, within its bound: a request too large is
	// refused before it takes an instance.
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, e.cfg.MaxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			e.finish(fn, w, r, t0, false, false, http.StatusRequestEntityTooLarge, fmt.Errorf("body over %d bytes", e.cfg.MaxBody))
			return
		}
		e.finish(fn, w, r, t0, false, false, http.StatusBadRequest, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), fn.spec.RequestTimeout.D())
	defer cancel()
	inst, cold, err := fn.acquire(ctx)
	if err != nil {
		e.finish(fn, w, r, t0, cold, false, statusOf(err), err)
		return
	}
	eventID := strconv.FormatUint(e.seq.Add(1), 10)
	out, err := http.NewRequestWithContext(ctx, r.Method, "http://"+name+path, bytes.NewReader(body))
	if err != nil {
		fn.release(inst)
		e.finish(fn, w, r, t0, cold, false, http.StatusBadRequest, err)
		return
	}
	out.URL.RawQuery = r.URL.RawQuery
	for k, vs := range r.Header {
		out.Header[k] = vs
	}
	for _, h := range hopByHop {
		out.Header.Del(h)
	}
	out.Header.Set("Fre-Function", name)
	out.Header.Set("Fre-Tenant", fn.spec.Tenant)
	out.Header.Set("Fre-Event-Id", eventID)
	out.Header.Set("Fre-Cold", strconv.FormatBool(cold))
	if d, ok := ctx.Deadline(); ok {
		out.Header.Set("Fre-Deadline", d.UTC().Format(time.RFC3339Nano))
	}
	resp, err := inst.client.Do(out)
	if err != nil {
		e.instanceFailed(fn, inst, w, r, t0, cold, err)
		return
	}
	for _, h := range hopByHop {
		resp.Header.Del(h)
	}
	// The answer is read whole before it is sent: a function that closes
	// mid-response gets a 502, not a truncated 200.
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		e.instanceFailed(fn, inst, w, r, t0, cold, err)
		return
	}
	fn.release(inst)
	for k, vs := range resp.Header {
		w.Header()[k] = vs
	}
	w.Header().Set("Fre-Instance", inst.id)
	w.Header().Set("Fre-Cold", strconv.FormatBool(cold))
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(resp.StatusCode)
	w.Write(b)
	d := time.Since(t0)
	fn.m.request(resp.StatusCode, cold, true, d)
	e.log.Debug("invoked", "function", name, "instance", inst.id, "cold", cold, "status", resp.StatusCode, "ms", ms(d))
}

// instanceFailed answers a request whose instance failed it: exited,
// timed out, or broke the protocol (the instance is retired then).
func (e *Engine) instanceFailed(fn *function, inst *instance, w http.ResponseWriter, r *http.Request, t0 time.Time, cold bool, err error) {
	status, why := http.StatusBadGateway, fmt.Errorf("%w: %v", ErrProtocol, err)
	select {
	case <-inst.task.Exited():
		why = fmt.Errorf("%w with status %d during the request", ErrCrashed, inst.task.Status())
	default:
		if errors.Is(err, context.DeadlineExceeded) {
			status, why = http.StatusGatewayTimeout, fmt.Errorf("no answer within %v", fn.spec.RequestTimeout.D())
		}
	}
	fn.retire(inst, why.Error())
	e.finish(fn, w, r, t0, cold, false, status, why)
}

// finish answers a request that failed with a JSON error.
func (e *Engine) finish(fn *function, w http.ResponseWriter, r *http.Request, t0 time.Time, cold, served bool, status int, err error) {
	d := time.Since(t0)
	fn.m.request(status, cold, served, d)
	e.log.Warn("invocation failed", "function", fn.spec.Name, "status", status, "err", err.Error(), "ms", ms(d))
	writeJSON(w, status, map[string]string{"error": err.Error()})
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// fail answers an API error.
func (e *Engine) fail(w http.ResponseWriter, r *http.Request, err error) {
	status := statusOf(err)
	e.log.Info("request refused", "method", r.Method, "path", r.URL.Path, "status", status, "err", err.Error())
	writeJSON(w, status, map[string]string{"error": err.Error()})
}

func statusOf(err error) int {
	switch {
	case errors.Is(err, ErrBadRequest):
		return http.StatusBadRequest
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, ErrExists):
		return http.StatusConflict
	case errors.Is(err, ErrBusy), errors.Is(err, ErrQueueWait), errors.Is(err, ErrStopping):
		return http.StatusServiceUnavailable
	case errors.Is(err, ErrNotReady), errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	case errors.Is(err, ErrCrashed), errors.Is(err, ErrProtocol):
		return http.StatusBadGateway
	}
	return http.StatusInternalServerError
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func decodeJSON(r *http.Request, limit int64, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("more than one JSON value")
	}
	return nil
}
