package cli

import (
	"fmt"
	"os"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/leashpki/leash/ca"
)

func (r *runtime) caCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "ca",
		Usage: "create and describe the embedded certificate authority",
		Subcommands: []*ucli.Command{
			{
				Name:  "init",
				Usage: "create a root CA, an intermediate and a token signing key in <data-dir>/ca",
				Description: "The root key is only needed again to re-issue the intermediate: after init you may\n" +
					"move <data-dir>/ca/root_ca.key offline. Keys are encrypted with the password from\n" +
					"--password-file unless --insecure-no-password is given.",
				Flags: []ucli.Flag{
					&ucli.StringFlag{Name: "name", Usage: "CA name, used in the root and intermediate subjects", Required: true},
					&ucli.StringFlag{Name: "key-type", Usage: fmt.Sprintf("CA key type: %v", ca.KeyTypes()), Value: string(ca.KeyECP256)},
					&ucli.StringFlag{Name: "audience", Usage: "host name placed in token audiences", Value: "leash-ca"},
					&ucli.DurationFlag{Name: "root-lifetime", Usage: "validity of the root", Value: 10 * 365 * 24 * time.Hour},
					&ucli.DurationFlag{Name: "intermediate-lifetime", Usage: "validity of the intermediate", Value: 5 * 365 * 24 * time.Hour},
					&ucli.BoolFlag{Name: "insecure-no-password", Usage: "store the CA keys unencrypted (development only)"},
					jsonFlag(),
				},
				Action: r.caInit,
			},
			{
				Name:   "info",
				Usage:  "describe the CA: names, key type, fingerprint, validity, whether the root key is online",
				Flags:  []ucli.Flag{jsonFlag()},
				Action: r.caInfo,
			},
			{
				Name:  "crl",
				Usage: "print or write the current signed CRL (re-signed when stale)",
				Flags: []ucli.Flag{
					&ucli.StringFlag{Name: "out", Usage: "write to this file instead of standard output"},
					&ucli.BoolFlag{Name: "der", Usage: "DER instead of PEM"},
				},
				Action: r.caCRL,
			},
		},
	}
}

type caInfoJSON struct {
	Name                 string    `json:"name"`
	Dir                  string    `json:"dir"`
	KeyType              string    `json:"key_type"`
	EncryptedKeys        bool      `json:"encrypted_keys"`
	RootSubject          string    `json:"root_subject"`
	RootNotAfter         time.Time `json:"root_not_after"`
	RootFingerprint      string    `json:"root_fingerprint"`
	RootKeyOnline        bool      `json:"root_key_online"`
	IntermediateSubject  string    `json:"intermediate_subject"`
	IntermediateNotAfter time.Time `json:"intermediate_not_after"`
	Audience             string    `json:"audience"`
}

func infoJSON(info *ca.Info) caInfoJSON {
	return caInfoJSON{
		Name: info.Settings.Name, Dir: info.Dir, KeyType: string(info.Settings.KeyType),
		EncryptedKeys: info.Settings.EncryptedKeys, RootSubject: info.Root.Subject.String(),
		RootNotAfter: info.Root.NotAfter.UTC(), RootFingerprint: info.RootFingerprint, RootKeyOnline: info.RootKeyOnline,
		IntermediateSubject: info.Intermediate.Subject.String(), IntermediateNotAfter: info.Intermediate.NotAfter.UTC(),
		Audience: info.Settings.Audience,
	}
}

func (r *runtime) caInit(c *ucli.Context) error {
	if c.Args().Present() {
		return usageError{fmt.Errorf("ca init takes no arguments (got %q)", c.Args().Slice())}
	}
	kt, err := ca.ParseKeyType(c.String("key-type"))
	if err != nil {
		return usageError{err}
	}
	pw, err := r.password(c)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(c.String("data-dir"), 0o700); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	info, err := ca.Init(caDir(c), ca.InitOptions{
		Name: c.String("name"), KeyType: kt, Audience: c.String("audience"), Password: pw,
		InsecureNoPassword: c.Bool("insecure-no-password"), RootLifetime: c.Duration("root-lifetime"),
		IntermediateLifetime: c.Duration("intermediate-lifetime"),
	})
	if err != nil {
		return err
	}
	if wantJSON(c) {
		return printJSON(c, infoJSON(info))
	}
	w := c.App.Writer
	fmt.Fprintf(w, "CA %q created in %s\n", info.Settings.Name, info.Dir)
	fmt.Fprintf(w, "root fingerprint (SHA-256): %s\n", info.RootFingerprint)
	if !info.Settings.EncryptedKeys {
		fmt.Fprintln(w, "WARNING: the CA keys are stored unencrypted (--insecure-no-password)")
	}
	fmt.Fprintf(w, "The root key %s is not needed day to day; consider moving it offline.\n", ca.RootKeyFile)
	return nil
}

func (r *runtime) caInfo(c *ucli.Context) error {
	info, err := ca.ReadInfo(caDir(c))
	if err != nil {
		return withDataDirHint(err)
	}
	j := infoJSON(info)
	if wantJSON(c) {
		return printJSON(c, j)
	}
	w := r.out(c)
	rows := [][2]string{
		{"name", j.Name}, {"directory", j.Dir}, {"key type", j.KeyType},
		{"keys encrypted", fmt.Sprint(j.EncryptedKeys)},
		{"root", j.RootSubject}, {"root expires", j.RootNotAfter.Format(time.RFC3339)},
		{"root fingerprint", j.RootFingerprint}, {"root key online", fmt.Sprint(j.RootKeyOnline)},
		{"intermediate", j.IntermediateSubject}, {"intermediate expires", j.IntermediateNotAfter.Format(time.RFC3339)},
		{"token audience", j.Audience},
	}
	for _, row := range rows {
		fmt.Fprintf(w, "%s:\t%s\n", row[0], row[1])
	}
	return w.Flush()
}

func (r *runtime) caCRL(c *ucli.Context) error {
	a, closeCA, err := r.openCA(c)
	if err != nil {
		return err
	}
	defer closeCA()
	crl, err := a.CRL(ctx(c))
	if err != nil {
		return err
	}
	data := crl.PEM()
	if c.Bool("der") {
		data = crl.DER
	}
	if out := c.String("out"); out != "" {
		if err := writeFiles([]outFile{{path: out, data: data, mode: 0o644}}); err != nil {
			return err
		}
		fmt.Fprintf(c.App.ErrWriter, "CRL #%d written to %s (next update %s)\n", crl.Number, out, crl.NextUpdate.Format(time.RFC3339))
		return nil
	}
	_, err = c.App.Writer.Write(data)
	return err
}
