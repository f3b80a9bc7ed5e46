package gateway

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/leashpki/leash/gateway/store"
	"github.com/leashpki/leash/protocol"
)

func (s *Server) listDomains(w http.ResponseWriter, _ *http.Request, _ caller) error {
	list := s.domains.list()
	slices.SortFunc(list, func(a, b protocol.Domain) int { return strings.Compare(a.Name, b.Name) })
	writeJSON(w, http.StatusOK, protocol.DomainList{Domains: list})
	return nil
}

func (s *Server) getDomain(w http.ResponseWriter, r *http.Request, _ caller) error {
	rec, err := s.st.Blob(r.Context(), domainPrefix+r.PathValue("name"))
	if errors.Is(err, store.ErrNotFound) {
		return errorf(http.StatusNotFound, protocol.CodeNotFound, "no domain %s", r.PathValue("name"))
	}
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", protocol.ContentTypeJSON)
	_, _ = w.Write(rec.Value)
	return nil
}

// putDomainHandler creates or replaces a domain. The name comes from the
// path; a body naming another domain is refused.
func (s *Server) putDomainHandler(w http.ResponseWriter, r *http.Request, c caller) error {
	if err := checkContentType(r, protocol.ContentTypeJSON); err != nil {
		return err
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, protocol.MaxBodyBytes))
	if err != nil {
		return errorf(http.StatusRequestEntityTooLarge, protocol.CodeTooLarge, "body larger than %d bytes", protocol.MaxBodyBytes)
	}
	var probe struct {
		Name string `json:"name"`
	}
	_ = json.Unmarshal(body, &probe)
	name := r.PathValue("name")
	if probe.Name != "" && probe.Name != name {
		return errorf(http.StatusBadRequest, protocol.CodeBadRequest, "body names domain %q but the path %q", probe.Name, name)
	}
	if probe.Name == "" {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(body, &m); err != nil {
			return errorf(http.StatusBadRequest, protocol.CodeBadRequest, "domain: %v", err)
		}
		m["name"], _ = json.Marshal(name)
		body, _ = json.Marshal(m)
	}
	if cur, err := s.st.Blob(r.Context(), domainPrefix+name); err == nil {
		var stored protocol.Domain
		if json.Unmarshal(cur.Value, &stored) == nil && strings.HasPrefix(stored.Source, fileSource) {
			return errorf(http.StatusConflict, protocol.CodeConflict, "domain %s is managed by %s; change the file", name, strings.TrimPrefix(stored.Source, fileSource))
		}
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) == nil && m["source"] != nil {
		return errorf(http.StatusBadRequest, protocol.CodeBadRequest, "source is set by the gateway, not by a request")
	}
	d, err := s.putDomain(r.Context(), body)
	if err != nil {
		return err
	}
	s.audit(r.Context(), c.actor(), "domain.set", d.Name, "runner "+d.Runner)
	writeJSON(w, http.StatusOK, d)
	return nil
}

func (s *Server) deleteDomain(w http.ResponseWriter, r *http.Request, c caller) error {
	name := r.PathValue("name")
	if cur, err := s.st.Blob(r.Context(), domainPrefix+name); err == nil {
		var stored protocol.Domain
		if json.Unmarshal(cur.Value, &stored) == nil && strings.HasPrefix(stored.Source, fileSource) {
			return errorf(http.StatusConflict, protocol.CodeConflict, "domain %s is managed by %s; remove the file", name, strings.TrimPrefix(stored.Source, fileSource))
		}
	}
	if err := s.st.DeleteBlob(r.Context(), domainPrefix+name); errors.Is(err, store.ErrNotFound) {
		return errorf(http.StatusNotFound, protocol.CodeNotFound, "no domain %s", name)
	} else if err != nil {
		return err
	}
	if err := s.domains.reload(r.Context()); err != nil {
		return err
	}
	s.audit(r.Context(), c.actor(), "domain.remove", name, "")
	w.WriteHeader(http.StatusNoContent)
	return nil
}
