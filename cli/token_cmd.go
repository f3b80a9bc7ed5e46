package cli

import (
	"fmt"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/leashpki/leash/ca"
	leashtls "github.com/leashpki/leash/tls"
)

func (r *runtime) tokenCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "token",
		Usage: "one-time enrollment tokens for runners and other clients",
		Subcommands: []*ucli.Command{
			{
				Name:  "create",
				Usage: "mint a one-time token bound to one name; it carries the root fingerprint for pinning",
				Flags: []ucli.Flag{
					&ucli.StringFlag{Name: "name", Usage: "the runner id or client name the token enrolls", Required: true},
					&ucli.StringFlag{Name: "role", Usage: fmt.Sprintf("client role: %v", leashtls.Roles()), Value: string(leashtls.RoleRunner)},
					&ucli.DurationFlag{Name: "ttl", Usage: fmt.Sprintf("how long the token stays usable (%s to %s)", ca.MinTokenTTL, ca.MaxTokenTTL), Value: ca.DefaultTokenTTL},
					jsonFlag(),
				},
				Action: r.tokenCreate,
			},
			{
				Name:  "list",
				Usage: "list tokens and their state: pending, used, revoked, expired",
				Flags: []ucli.Flag{
					&ucli.StringFlag{Name: "name", Usage: "only tokens for this name"},
					&ucli.StringFlag{Name: "state", Usage: "only this state: pending, used, revoked, expired"},
					&ucli.BoolFlag{Name: "all", Usage: "include internal tokens spent by direct issuance"},
					jsonFlag(),
				},
				Action: r.tokenList,
			},
			{
				Name:      "revoke",
				Usage:     "revoke an unused token so it can never enroll",
				ArgsUsage: "TOKEN-ID",
				Action:    r.tokenRevoke,
			},
		},
	}
}

func (r *runtime) tokenCreate(c *ucli.Context) error {
	if c.Args().Present() {
		return usageError{fmt.Errorf("unexpected arguments %q", c.Args().Slice())}
	}
	profile, err := ca.ProfileForRole(leashtls.Role(c.String("role")))
	if err != nil {
		return usageError{err}
	}
	a, closeCA, err := r.openCA(c)
	if err != nil {
		return err
	}
	defer closeCA()
	tok, err := a.CreateToken(ctx(c), ca.TokenRequest{Profile: profile, Subject: c.String("name"), TTL: c.Duration("ttl")})
	if err != nil {
		return err
	}
	if wantJSON(c) {
		return printJSON(c, map[string]any{"id": tok.ID, "token": tok.Value, "role": c.String("role"), "name": tok.Subject,
			"expires_at": tok.ExpiresAt, "root_fingerprint": tok.RootFingerprint})
	}
	w := c.App.Writer
	fmt.Fprintln(w, tok.Value)
	fmt.Fprintf(c.App.ErrWriter, "token %s enrolls %s %q once, until %s (root %s)\n", tok.ID, c.String("role"),
		tok.Subject, tok.ExpiresAt.Format(time.RFC3339), tok.RootFingerprint)
	return nil
}

type tokenRow struct {
	ID         string    `json:"id"`
	Kind       string    `json:"kind"`
	Role       string    `json:"role"`
	Name       string    `json:"name"`
	State      string    `json:"state"`
	CreatedAt  time.Time `json:"created_at"`
	ExpiresAt  time.Time `json:"expires_at"`
	UsedAt     time.Time `json:"used_at,omitzero"`
	RevokedAt  time.Time `json:"revoked_at,omitzero"`
	CertSerial string    `json:"cert_serial,omitempty"`
}

func (r *runtime) tokenList(c *ucli.Context) error {
	state := c.String("state")
	switch ca.TokenState(state) {
	case "", ca.TokenPending, ca.TokenUsed, ca.TokenRevoked, ca.TokenExpired:
	default:
		return usageError{fmt.Errorf("unknown state %q: use pending, used, revoked or expired", state)}
	}
	q := ca.TokenQuery{Subject: c.String("name")}
	if !c.Bool("all") {
		q.Kind = ca.TokenEnroll
	}
	a, closeCA, err := r.openCA(c)
	if err != nil {
		return err
	}
	defer closeCA()
	infos, err := a.Tokens(ctx(c), q)
	if err != nil {
		return err
	}
	rows := []tokenRow{}
	for _, i := range infos {
		if state != "" && string(i.State) != state {
			continue
		}
		rows = append(rows, tokenRow{ID: i.ID, Kind: i.Kind, Role: i.Profile, Name: i.Subject, State: string(i.State),
			CreatedAt: i.CreatedAt, ExpiresAt: i.ExpiresAt, UsedAt: i.UsedAt, RevokedAt: i.RevokedAt, CertSerial: i.CertSerial})
	}
	if wantJSON(c) {
		return printJSON(c, rows)
	}
	w := r.out(c)
	fmt.Fprintln(w, "ID\tROLE\tNAME\tSTATE\tEXPIRES\tCERT SERIAL")
	for _, row := range rows {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", row.ID, row.Role, row.Name, row.State, row.ExpiresAt.Format(time.RFC3339), row.CertSerial)
	}
	return w.Flush()
}

func (r *runtime) tokenRevoke(c *ucli.Context) error {
	pos, err := args(c)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{fmt.Errorf("token revoke takes exactly one TOKEN-ID (see leash token list), got %d arguments", len(pos))}
	}
	a, closeCA, err := r.openCA(c)
	if err != nil {
		return err
	}
	defer closeCA()
	id := pos[0]
	if err := a.RevokeToken(ctx(c), id); err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "token %s revoked\n", id)
	return nil
}
