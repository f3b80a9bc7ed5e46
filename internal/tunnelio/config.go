package tunnelio

import (
	"log/slog"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/leashpki/leash/protocol"
)

// Config is the yamux configuration both ends of a tunnel use.
// keepAlive <= 0 means protocol.TunnelKeepAlive. A ping that gets no
// answer within an interval ends the session, so a dead peer is noticed
// within two intervals.
func Config(log *slog.Logger, keepAlive time.Duration) *yamux.Config {
	if keepAlive <= 0 {
		keepAlive = protocol.TunnelKeepAlive
	}
	cfg := yamux.DefaultConfig()
	cfg.KeepAliveInterval = keepAlive
	cfg.ConnectionWriteTimeout = keepAlive
	cfg.StreamCloseTimeout = 30 * time.Minute // half-closed streams may still carry a long answer
	cfg.MaxStreamWindowSize = 1 << 20
	cfg.AcceptBacklog = 1024
	cfg.LogOutput = nil
	cfg.Logger = slog.NewLogLogger(log.Handler(), slog.LevelWarn)
	return cfg
}
