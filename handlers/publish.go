package handlers

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/crierhq/crier/auth"
	"github.com/crierhq/crier/broker"
)

// publishHandler serves POST /publish.
type publishHandler struct {
	broker  Broker
	log     *slog.Logger
	auth    *authorizer
	maxBody int64
	retry   time.Duration
	// failing is set while publishes fail (Redis is down, say): an outage is logged
	// when it begins and when it ends, not once per publish, and failures counts them.
	failing  atomic.Bool
	failures prometheus.Counter
}

// publishReceipt is the answer to a successful publish.
type publishReceipt struct {
	ID string `json:"id"`
}

// badRequest is an error whose text is meant for the client.
func (h *publishHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m, err := h.read(w, r)
	if err != nil {
		if e := (*httpError)(nil); !errors.As(err, &e) {
			err = reject(http.StatusBadRequest, "the request could not be read")
		}
		writeErr(w, err)
		return
	}
	receipt, err := h.broker.Publish(r.Context(), m)
	if err != nil {
		switch {
		case errors.Is(err, broker.ErrKeyConflict):
		case errors.Is(err, broker.ErrBusy):
			// The broker says once when it falls behind, not once per publish.
			h.log.Debug("publish refused", "err", err, "request_id", middleware.GetReqID(r.Context()))
		default:
			h.failures.Inc()
			if !h.failing.Swap(true) {
				h.log.Warn("publishing fails; answering 503 until it works again (each failure is counted in crier_publish_failures_total)",
					"err", err, "request_id", middleware.GetReqID(r.Context()))
			} else {
				h.log.Debug("publish failed", "err", err, "request_id", middleware.GetReqID(r.Context()))
			}
		}
		writeErr(w, brokerError(err, h.retry))
		return
	}
	if h.failing.Swap(false) {
		h.log.Info("publishing works again")
	}
	h.log.Debug("published", "id", receipt.ID, "topic", m.Topic, "event", m.Name,
		"bytes", len(m.Data), "duplicate", receipt.Duplicate, "request_id", middleware.GetReqID(r.Context()))
	writeJSON(w, publishReceipt{ID: broker.FormatID(receipt.ID)})
}

// read authorizes the request and turns it into a valid message.
func (h *publishHandler) read(w http.ResponseWriter, r *http.Request) (broker.Message, error) {
	tok, err := h.auth.publisher(r)
	if err != nil {
		return broker.Message{}, err
	}
	mediaType, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || (mediaType != "application/json" && mediaType != "text/plain") {
		return broker.Message{}, reject(http.StatusUnsupportedMediaType,
			"Content-Type must be application/json or text/plain")
	}
	body, err := h.body(w, r)
	if err != nil {
		return broker.Message{}, err
	}
	var m broker.Message
	if mediaType == "application/json" {
		m, err = decodeJSONMessage(body)
	} else {
		m, err = decodeTextMessage(r.URL.Query(), body)
	}
	if err != nil {
		return broker.Message{}, err
	}
	if err := publishTo(tok, m.Topic); err != nil {
		return broker.Message{}, err
	}
	m.Publisher = publisherOf(tok)
	m.Text = mediaType == "text/plain"
	if keys, ok := r.Header["Idempotency-Key"]; ok {
		if len(keys) != 1 {
			return broker.Message{}, reject(http.StatusBadRequest, "give one Idempotency-Key")
		}
		if err := checkIdempotencyKey(keys[0]); err != nil {
			return broker.Message{}, reject(http.StatusBadRequest, err.Error())
		}
		m.Key = keys[0]
	}
	return m, nil
}

// body reads at most maxBody bytes: more is a 413.
func (h *publishHandler) body(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	tooLarge := reject(http.StatusRequestEntityTooLarge, "the body is larger than the server accepts")
	if r.ContentLength > h.maxBody {
		return nil, tooLarge
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.maxBody))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, tooLarge
	}
	if err != nil {
		return nil, reject(http.StatusBadRequest, "the body could not be read")
	}
	return body, nil
}

// jsonMessage is the JSON form of a publish.
type jsonMessage struct {
	Topic *string         `json:"topic"`
	Event *string         `json:"event"`
	Data  json.RawMessage `json:"data"`
}

func decodeJSONMessage(body []byte) (broker.Message, error) {
	if trimmed := bytes.TrimLeft(body, " \t\r\n"); len(trimmed) > 0 && trimmed[0] != '{' {
		return broker.Message{}, reject(http.StatusBadRequest, "the body must be a JSON object")
	}
	var in jsonMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&in); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			if te.Field == "" {
				return broker.Message{}, reject(http.StatusBadRequest, "the body must be a JSON object")
			}
			return broker.Message{}, reject(http.StatusBadRequest, "the field "+te.Field+" must be a string")
		}
		return broker.Message{}, reject(http.StatusBadRequest, "the body is not valid JSON")
	}
	if _, err := dec.Token(); err != io.EOF {
		return broker.Message{}, reject(http.StatusBadRequest, "the body must hold one JSON object and nothing after it")
	}
	if !utf8.Valid(body) {
		return broker.Message{}, reject(http.StatusBadRequest, "the body must be valid UTF-8")
	}
	data := []byte("null")
	if len(in.Data) > 0 {
		var compact bytes.Buffer
		if err := json.Compact(&compact, in.Data); err != nil {
			return broker.Message{}, reject(http.StatusBadRequest, "the body is not valid JSON")
		}
		data = compact.Bytes()
	}
	return message(in.Topic, in.Event, data)
}

func decodeTextMessage(q url.Values, body []byte) (broker.Message, error) {
	if !utf8.Valid(body) {
		return broker.Message{}, reject(http.StatusBadRequest, "the body must be valid UTF-8")
	}
	var topic, event *string
	for name, dst := range map[string]**string{"topic": &topic, "event": &event} {
		switch vs := q[name]; len(vs) {
		case 0:
		case 1:
			*dst = &vs[0]
		default:
			return broker.Message{}, reject(http.StatusBadRequest, "give at most one "+name+" parameter")
		}
	}
	return message(topic, event, body)
}

// message validates a publish's topic and event name.
func message(topic, event *string, data []byte) (broker.Message, error) {
	m := broker.Message{Name: broker.NameMessage, Data: data}
	if topic != nil {
		if err := auth.CheckTopic(*topic); err != nil {
			return broker.Message{}, reject(http.StatusBadRequest, err.Error())
		}
		m.Topic = *topic
	}
	if event != nil {
		if err := checkEventName(*event); err != nil {
			return broker.Message{}, reject(http.StatusBadRequest, err.Error())
		}
		m.Name = *event
	}
	return m, nil
}
