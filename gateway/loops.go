package gateway

import (
	"context"
	"time"
)

// runOfflineDetector marks runners offline once no heartbeat arrived for
// OfflineAfter; with several replicas each runner is reported by one.
func (s *Server) runOfflineDetector(ctx context.Context) error {
	every := min(s.cfg.HeartbeatInterval/2, time.Second)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		ids, err := s.st.MarkOffline(ctx, s.now().UTC().Add(-s.cfg.OfflineAfter))
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("offline detection failed", "err", err)
			}
			continue
		}
		for _, id := range ids {
			s.log.Info("runner offline", "runner", id, "after", s.cfg.OfflineAfter)
			s.audit(ctx, "gateway", "offline", id, "no heartbeat for "+s.cfg.OfflineAfter.String())
		}
	}
}

// runEventRetention prunes old events every minute.
func (s *Server) runEventRetention(ctx context.Context) error {
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		n, err := s.st.PruneEvents(ctx, s.now().UTC().Add(-s.cfg.EventMaxAge), s.cfg.EventsPerRunner)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("event retention failed", "err", err)
			}
			continue
		}
		if n > 0 {
			s.log.Debug("events pruned", "count", n)
		}
	}
}
