package main

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/identity"
)

// Validity defaults: the CA outlives many host renewals; a host certificate
// lasts a year unless the CA ends sooner.
const (
	defaultCADuration   = 5 * 365 * 24 * time.Hour
	defaultHostDuration = 365 * 24 * time.Hour
	// clockSkew backdates not-before so that a host whose clock is a little
	// behind the signer's accepts a fresh certificate.
	clockSkew = time.Minute
)

func newCACmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ca",
		Short: "Run the cluster CA: create it, sign host certificates, inspect and verify them",
		Long: `A cluster CA binds each host's node name, WireGuard public key, prefixes and groups in a
certificate that travels in gossip, so that a host holding the gossip key cannot speak for another.

  weft ca init --name my-cluster                 write ca.key (keep it offline) and ca.crt
  weft ca sign --name host-a --public-key K --subnet 10.42.7.0/24 --group web
  weft ca print host-a.crt
  weft ca verify --ca ca.crt host-a.crt`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newCAInitCmd(), newCASignCmd(), newCAPrintCmd(), newCAVerifyCmd())
	return cmd
}

func newCAInitCmd() *cobra.Command {
	var (
		name, dur, outDir string
		subnets, groups   []string
	)
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create a CA: ca.key (mode 0600) and ca.crt; never overwrites",
		Long: `Create a new cluster CA in --out-dir: ca.key, its Ed25519 private key (mode 0600; whoever holds
it can admit hosts: keep it off the hosts), and ca.crt, the self-signed CA certificate every host
trusts. --subnet and --group constrain what the CA may sign (default: anything).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			d, prefixes, err := parseValiditySubnets(dur, subnets)
			if err != nil {
				return err
			}
			keyPath, certPath := filepath.Join(outDir, "ca.key"), filepath.Join(outDir, "ca.crt")
			for _, p := range []string{keyPath, certPath} {
				if _, err := os.Lstat(p); err == nil {
					return fmt.Errorf("%s already exists: refusing to overwrite a CA (every host certificate depends on it); choose another --out-dir", p)
				}
			}
			now := time.Now()
			ca, key, err := identity.NewCA(identity.CASpec{Name: name, NotBefore: now.Add(-clockSkew), NotAfter: now.Add(d), Prefixes: prefixes, Groups: groups}, nil)
			if err != nil {
				return fmt.Errorf("create CA: %w", err)
			}
			crt, err := ca.MarshalPEM()
			if err != nil {
				return err
			}
			if err := os.MkdirAll(outDir, 0o755); err != nil {
				return err
			}
			if err := identity.WriteNewFile(keyPath, identity.MarshalCAKeyPEM(key), 0o600); err != nil {
				return err
			}
			if err := identity.WriteNewFile(certPath, crt, 0o644); err != nil {
				os.Remove(keyPath) // no key without its certificate
				return err
			}
			fp, _ := ca.Fingerprint()
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "wrote %s (private, mode 0600) and %s\n", keyPath, certPath)
			fmt.Fprintf(out, "CA %q fingerprint %s, valid until %s\n", ca.Name, fp, ca.NotAfter.Format(time.RFC3339))
			fmt.Fprintf(out, "next: weft ca sign --ca-key %s --ca-cert %s --name HOST --public-key \"$(weft keygen --public < HOST.key)\" --subnet PREFIX\n", keyPath, certPath)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&name, "name", "weft", "the CA's name (shown in certificates and refusals)")
	fl.StringVar(&dur, "duration", "5y", "validity: a Go duration (8760h) or days/years (365d, 5y); host certificates cannot outlive it")
	fl.StringVar(&outDir, "out-dir", ".", "directory for ca.key and ca.crt")
	fl.StringSliceVar(&subnets, "subnet", nil, "a prefix the CA may sign, host certificates' prefixes must lie within one (repeatable; default any)")
	fl.StringArrayVar(&groups, "group", nil, "a group the CA may sign (repeatable; default any)")
	return cmd
}

func newCASignCmd() *cobra.Command {
	var (
		caKey, caCert, name, pubKey, dur, out string
		subnets, groups                       []string
	)
	cmd := &cobra.Command{
		Use:   "sign",
		Short: "Issue a host certificate: node name, WireGuard public key, prefixes, groups",
		Long: `Issue a host certificate signed by the CA. --name must be the host's node name in gossip and
--public-key its WireGuard public key (weft keygen --public < its key); --subnet lists the prefixes
it may announce (its /24 of the cluster CIDR, static prefixes). The validity (--duration, default a
year) ends no later than the CA's.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if name == "" || pubKey == "" {
				return errors.New("--name and --public-key are required (the host's node name and its WireGuard public key)")
			}
			key, err := crypto.ParsePublicKey(pubKey)
			if err != nil {
				return fmt.Errorf("--public-key: %w (pass the host's public key, the output of `weft keygen --public < KEYFILE`)", err)
			}
			d, prefixes, err := parseValiditySubnets(dur, subnets)
			if err != nil {
				return err
			}
			ca, err := identity.LoadCertificateFile(caCert)
			if err != nil {
				return fmt.Errorf("--ca-cert: %w", err)
			}
			if ca.Kind != identity.KindCA {
				return fmt.Errorf("--ca-cert %s is a host certificate: pass the ca.crt of `weft ca init`", caCert)
			}
			k, err := identity.LoadCAKeyFile(caKey)
			if err != nil {
				return fmt.Errorf("--ca-key: %w", err)
			}
			now := time.Now()
			if now.After(ca.NotAfter) {
				return fmt.Errorf("the CA %q expired at %s: create a new one with `weft ca init` and rotate", ca.Name, ca.NotAfter.Format(time.RFC3339))
			}
			spec := identity.HostSpec{Name: name, PublicKey: key, Prefixes: prefixes, Groups: groups,
				NotBefore: now.Add(-clockSkew), NotAfter: now.Add(d)}
			if spec.NotBefore.Before(ca.NotBefore) {
				spec.NotBefore = ca.NotBefore
			}
			capped := false
			if spec.NotAfter.After(ca.NotAfter) {
				spec.NotAfter, capped = ca.NotAfter, true
			}
			c, err := identity.Sign(ca, k, spec)
			if err != nil {
				if errors.Is(err, identity.ErrCAConstraint) {
					return fmt.Errorf("%w (`weft ca print %s` shows what the CA may sign)", err, caCert)
				}
				return err
			}
			p, err := c.MarshalPEM()
			if err != nil {
				return err
			}
			if out == "" {
				if strings.ContainsAny(name, `/\`) {
					return fmt.Errorf("the name %q holds a path separator: choose the output file with --out", name)
				}
				out = name + ".crt"
			}
			w := cmd.OutOrStdout()
			if out == "-" {
				_, err := w.Write(p)
				return err
			}
			if err := identity.WriteNewFile(out, p, 0o644); err != nil {
				return err
			}
			fp, _ := c.Fingerprint()
			tag, _ := c.EncodeTag()
			fmt.Fprintf(w, "wrote %s: host %q, fingerprint %s, valid until %s; %d characters in gossip (of the 512 bytes all tags share)\n",
				out, c.Name, fp, c.NotAfter.Format(time.RFC3339), len(tag))
			if capped {
				fmt.Fprintf(w, "note: the validity was cut to the CA's, which ends %s\n", ca.NotAfter.Format(time.RFC3339))
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&caKey, "ca-key", "ca.key", "the CA's private key (from `weft ca init`)")
	fl.StringVar(&caCert, "ca-cert", "ca.crt", "the CA's certificate")
	fl.StringVar(&name, "name", "", "the host's node name in gossip (required)")
	fl.StringVar(&pubKey, "public-key", "", "the host's WireGuard public key, base64 (required)")
	fl.StringSliceVar(&subnets, "subnet", nil, "a prefix the host may announce (repeatable)")
	fl.StringArrayVar(&groups, "group", nil, "a group of the host (repeatable)")
	fl.StringVar(&dur, "duration", "1y", "validity: a Go duration (8760h) or days/years (90d, 1y); capped by the CA's")
	fl.StringVar(&out, "out", "", "output file (default NAME.crt; - for stdout); never overwritten")
	return cmd
}

// certJSON is `weft ca print --json`.
type certJSON struct {
	Kind        string         `json:"kind"`
	Name        string         `json:"name"`
	Fingerprint string         `json:"fingerprint"`
	PublicKey   string         `json:"public_key"`
	Issuer      string         `json:"issuer,omitempty"`
	NotBefore   time.Time      `json:"not_before"`
	NotAfter    time.Time      `json:"not_after"`
	Prefixes    []netip.Prefix `json:"prefixes"`
	Groups      []string       `json:"groups"`
	Size        int            `json:"size"`
}

func newCAPrintCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "print FILE",
		Short: "Show a CA or host certificate: name, key, prefixes, groups, validity, fingerprint",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := identity.LoadCertificateFile(args[0])
			if err != nil {
				return err
			}
			fp, err := c.Fingerprint()
			if err != nil {
				return err
			}
			b, _ := c.MarshalBinary()
			j := certJSON{Kind: c.Kind.String(), Name: c.Name, Fingerprint: fp.String(), PublicKey: base64.StdEncoding.EncodeToString(c.PublicKey[:]),
				NotBefore: c.NotBefore, NotAfter: c.NotAfter, Prefixes: c.Prefixes, Groups: c.Groups, Size: len(b)}
			if j.Prefixes == nil {
				j.Prefixes = []netip.Prefix{}
			}
			if j.Groups == nil {
				j.Groups = []string{}
			}
			if c.Kind == identity.KindHost {
				j.Issuer = c.Issuer.String()
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return printJSON(out, j)
			}
			list := func(v []string, none string) string {
				if len(v) == 0 {
					return none
				}
				return strings.Join(v, ", ")
			}
			ps := make([]string, len(c.Prefixes))
			for i, p := range c.Prefixes {
				ps[i] = p.String()
			}
			none, what := "none", "prefixes"
			if c.Kind == identity.KindCA {
				none, what = "any (unconstrained)", "may sign"
			}
			tw := table(out)
			fmt.Fprintf(tw, "kind:\t%s certificate\n", c.Kind)
			fmt.Fprintf(tw, "name:\t%s\n", c.Name)
			fmt.Fprintf(tw, "fingerprint:\t%s\n", fp)
			fmt.Fprintf(tw, "public key:\t%s\n", j.PublicKey)
			if c.Kind == identity.KindHost {
				fmt.Fprintf(tw, "issuer:\t%s (first %d bytes of the CA's fingerprint)\n", j.Issuer, identity.IssuerSize)
			}
			fmt.Fprintf(tw, "valid:\t%s .. %s (%s)\n", c.NotBefore.Format(time.RFC3339), c.NotAfter.Format(time.RFC3339), validityState(c, time.Now()))
			fmt.Fprintf(tw, "%s:\t%s\n", what, list(ps, none))
			fmt.Fprintf(tw, "groups:\t%s\n", list(c.Groups, none))
			if c.Kind == identity.KindCA {
				sig := "valid (self-signed)"
				if _, err := identity.NewCAPool(c); err != nil {
					sig = "INVALID: " + err.Error()
				}
				fmt.Fprintf(tw, "signature:\t%s\n", sig)
			}
			fmt.Fprintf(tw, "size:\t%d bytes\n", len(b))
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func validityState(c *identity.Certificate, now time.Time) string {
	switch left := c.TimeLeft(now); {
	case now.Before(c.NotBefore):
		return "not yet valid"
	case left < 0:
		return "expired " + humanDuration(-left) + " ago"
	default:
		return humanDuration(left) + " left"
	}
}

func newCAVerifyCmd() *cobra.Command {
	var caFile, blFile string
	cmd := &cobra.Command{
		Use:   "verify --ca FILE [--blocklist FILE] CERT",
		Short: "Check a host certificate against trusted CAs and a blocklist; exits non-zero with the reason",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if caFile == "" {
				return errors.New("--ca is required: the ca.crt (or a bundle of CA certificates) the hosts trust")
			}
			pool, err := identity.LoadCAPoolFile(caFile)
			if err != nil {
				return fmt.Errorf("--ca: %w", err)
			}
			var bl *identity.Blocklist
			if blFile != "" {
				if bl, err = identity.LoadBlocklistFile(blFile); err != nil {
					return fmt.Errorf("--blocklist: %w", err)
				}
			}
			c, err := identity.LoadCertificateFile(args[0])
			if err != nil {
				return err
			}
			now := time.Now()
			cl, err := identity.Verify(c, pool, now, bl)
			if err != nil {
				return fmt.Errorf("%s does not verify (%s): %w%s", args[0], identity.Reason(err), err, verifyHint(err, args[0], caFile))
			}
			fmt.Fprintf(cmd.OutOrStdout(), "ok: host %q, signed by CA %q, %s left\n", cl.Name, cl.CAName, humanDuration(cl.TimeLeft(now)))
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&caFile, "ca", "", "trusted CA certificates (one file, one or more PEM blocks) (required)")
	fl.StringVar(&blFile, "blocklist", "", "revoked fingerprints, one hex fingerprint per line, # comments")
	return cmd
}

// verifyHint says what to do about a refusal.
func verifyHint(err error, cert, caFile string) string {
	switch {
	case errors.Is(err, identity.ErrUnknownCA):
		return fmt.Sprintf("; it was signed by another CA than those in %s: pass the ca.crt that signed it (`weft ca print %s` shows its issuer)", caFile, cert)
	case errors.Is(err, identity.ErrExpired):
		return "; issue a new one with `weft ca sign` (or a new CA, if the CA expired)"
	case errors.Is(err, identity.ErrNotYetValid):
		return "; check this host's clock, or wait"
	case errors.Is(err, identity.ErrBlocklisted):
		return "; it was revoked: issue the host a new certificate, or remove the line from the blocklist"
	case errors.Is(err, identity.ErrBadSignature):
		return "; the file was altered or signed by another key: issue a new one with `weft ca sign`"
	case errors.Is(err, identity.ErrWrongKind):
		return "; pass a host certificate (from `weft ca sign`), not a CA certificate"
	}
	return ""
}

// parseValidity reads a Go duration or a whole number of days or years
// (a year is 365 days).
func parseValidity(s string) (time.Duration, error) {
	var d time.Duration
	if n, ok := strings.CutSuffix(s, "d"); ok {
		d = 24 * time.Hour
		s = n
	} else if n, ok := strings.CutSuffix(s, "y"); ok {
		d = 365 * 24 * time.Hour
		s = n
	}
	if d != 0 {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 || n > 100*366 {
			return 0, fmt.Errorf("%q: want a positive whole number before d or y, e.g. 90d or 2y", s)
		}
		return time.Duration(n) * d, nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q: want a duration such as 8760h, 90d or 1y", s)
	}
	if v < time.Second {
		return 0, fmt.Errorf("%q: want at least a second", s)
	}
	return v, nil
}

// parseValiditySubnets parses the --duration and --subnet flags of ca init and ca sign.
func parseValiditySubnets(dur string, subnets []string) (time.Duration, []netip.Prefix, error) {
	d, err := parseValidity(dur)
	if err != nil {
		return 0, nil, fmt.Errorf("--duration: %w", err)
	}
	prefixes, err := parsePrefixes(subnets)
	if err != nil {
		return 0, nil, err
	}
	return d, prefixes, nil
}

func parsePrefixes(ss []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range ss {
		p, err := netip.ParsePrefix(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("--subnet %q: want a prefix such as 10.42.7.0/24 or fd42::/64", s)
		}
		if p.Masked() != p {
			return nil, fmt.Errorf("--subnet %s has host bits set: did you mean %s?", p, p.Masked())
		}
		out = append(out, p)
	}
	return out, nil
}

// humanDuration prints days for long spans, as certificates have them.
func humanDuration(d time.Duration) string {
	if d >= 48*time.Hour {
		return strconv.Itoa(int(d/(24*time.Hour))) + " days"
	}
	return d.Round(time.Second).String()
}
