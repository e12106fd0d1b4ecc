package relay

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/devicemail/devicemail/oauthmail/outbox"
)

// maxRefusals is how many recent refusals Status keeps.
const maxRefusals = 50

// Status is what `oauthmail relay status` shows: devices, queues and the
// last refusals. It holds no password and no message content.
type Status struct {
	Addr        string                    `json:"addr,omitempty"`
	TLSAddr     string                    `json:"tls_addr,omitempty"`
	Fingerprint string                    `json:"fingerprint"` // SHA-256 of the certificate
	Connections int                       `json:"connections"` // open now
	Devices     []DeviceStatus            `json:"devices"`
	Queues      map[string]*outbox.Status `json:"queues,omitempty"`   // by account, for queues that report one
	Refusals    []Refusal                 `json:"refusals,omitempty"` // the most recent last
}

// DeviceStatus counts one device's traffic since the relay started.
type DeviceStatus struct {
	Name        string    `json:"name"`
	Account     string    `json:"account"`
	LastSeen    time.Time `json:"last_seen,omitzero"`
	Accepted    int       `json:"accepted"`
	Refused     int       `json:"refused"`
	LastRefusal string    `json:"last_refusal,omitempty"`
}

// Refusal is one refused connection, AUTH, command or message.
type Refusal struct {
	Time   time.Time `json:"time"`
	Remote string    `json:"remote"`
	Device string    `json:"device,omitempty"` // "" when no device was recognised
	Reason string    `json:"reason"`
	Reply  string    `json:"reply"` // e.g. "550 5.7.1"
}

// Status reports the relay's devices, their queues and recent refusals.
func (r *Relay) Status(ctx context.Context) *Status {
	st := &Status{Fingerprint: r.fp, Queues: map[string]*outbox.Status{}}
	if a := r.Addr(); a != nil {
		st.Addr = a.String()
	}
	if a := r.TLSAddr(); a != nil {
		st.TLSAddr = a.String()
	}
	r.mu.Lock()
	for _, n := range r.conns {
		st.Connections += n
	}
	for _, d := range r.cfg.Devices {
		st.Devices = append(st.Devices, *r.devStats[d.Name])
	}
	st.Refusals = slices.Clone(r.refusals)
	r.mu.Unlock()
	for _, name := range r.accounts() {
		if q, ok := r.cfg.Mailboxes[name].Queue.(interface {
			Status(context.Context) (*outbox.Status, error)
		}); ok {
			if qs, err := q.Status(ctx); err == nil {
				st.Queues[name] = qs
			}
		}
	}
	return st
}

// refuse records and logs a refusal.
func (r *Relay) refuse(remote netip.Addr, device, reason string, reply *smtp.SMTPError) {
	code := formatReply(reply)
	now := time.Now()
	r.mu.Lock()
	r.refusals = append(r.refusals, Refusal{Time: now, Remote: remote.String(), Device: device, Reason: reason, Reply: code})
	if len(r.refusals) > maxRefusals {
		r.refusals = slices.Delete(r.refusals, 0, len(r.refusals)-maxRefusals)
	}
	if ds := r.devStats[device]; ds != nil {
		ds.Refused++
		ds.LastRefusal = reason
		ds.LastSeen = now
	}
	r.mu.Unlock()
	r.log.LogAttrs(context.Background(), slog.LevelInfo, "relay: refused", slog.String("remote", remote.String()),
		slog.String("device", device), slog.String("reason", reason), slog.String("reply", code))
}

func formatReply(e *smtp.SMTPError) string {
	return fmt.Sprintf("%d %d.%d.%d", e.Code, e.EnhancedCode[0], e.EnhancedCode[1], e.EnhancedCode[2])
}

func (r *Relay) seen(device string) {
	r.mu.Lock()
	if ds := r.devStats[device]; ds != nil {
		ds.LastSeen = time.Now()
	}
	r.mu.Unlock()
}

func (r *Relay) accepted(device string) {
	r.mu.Lock()
	if ds := r.devStats[device]; ds != nil {
		ds.Accepted++
		ds.LastSeen = time.Now()
	}
	r.mu.Unlock()
}
