package handlers

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5/middleware"
)

// logRequests logs one debug line per request once it is answered, with chi's request
// id. Streams are left out: they log their own opening and closing at info.
func logRequests(log *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !log.Enabled(r.Context(), slog.LevelDebug) {
				next.ServeHTTP(w, r)
				return
			}
			start := time.Now()
			rec := &recorder{ResponseWriter: w}
			next.ServeHTTP(rec, r)
			if rec.Header().Get("Content-Type") == "text/event-stream" {
				return
			}
			log.LogAttrs(r.Context(), slog.LevelDebug, "request",
				slog.String("method", r.Method),
				slog.String("path", r.URL.Path),
				slog.Int("status", rec.code()),
				slog.Int64("bytes", rec.bytes),
				slog.String("duration", time.Since(start).String()),
				slog.String("remote", r.RemoteAddr),
				slog.String("proto", r.Proto),
				slog.String("request_id", middleware.GetReqID(r.Context())),
			)
		})
	}
}

// recorder notes the status and size of a response. It implements nothing but Unwrap
// beyond http.ResponseWriter, so http.ResponseController reaches the real writer's
// FlushError and SetWriteDeadline, and sees their errors.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (rw *recorder) WriteHeader(code int) {
	if rw.status == 0 && code >= 200 {
		rw.status = code
	}
	rw.ResponseWriter.WriteHeader(code)
}

func (rw *recorder) Write(b []byte) (int, error) {
	if rw.status == 0 {
		rw.status = http.StatusOK
	}
	n, err := rw.ResponseWriter.Write(b)
	rw.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController find the writer underneath.
func (rw *recorder) Unwrap() http.ResponseWriter { return rw.ResponseWriter }

// code is the status sent, 200 when the handler wrote nothing at all.
func (rw *recorder) code() int {
	if rw.status == 0 {
		return http.StatusOK
	}
	return rw.status
}
