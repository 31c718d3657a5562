package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftnet/weft/crypto"
)

func TestCA_InitSignVerify(t *testing.T) {
	dir := t.TempDir()
	caDir, otherDir := filepath.Join(dir, "ca"), filepath.Join(dir, "other")
	out, err := run(t, "", "ca", "init", "--name", "test-ca", "--out-dir", caDir, "--subnet", "10.42.0.0/16")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "fingerprint") {
		t.Fatalf("init printed %q", out)
	}
	key, crt := filepath.Join(caDir, "ca.key"), filepath.Join(caDir, "ca.crt")
	if fi, err := os.Stat(key); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("ca.key: %v %v", fi.Mode(), err)
	}
	before, _ := os.ReadFile(key)
	if _, err := run(t, "", "ca", "init", "--out-dir", caDir); err == nil || !strings.Contains(err.Error(), "refusing to overwrite") {
		t.Fatalf("second init: %v", err)
	}
	if after, _ := os.ReadFile(key); string(after) != string(before) {
		t.Fatal("second init changed ca.key")
	}
	if _, err := run(t, "", "ca", "init", "--name", "other-ca", "--out-dir", otherDir); err != nil {
		t.Fatal(err)
	}

	priv, _ := crypto.GeneratePrivateKey()
	pub := priv.Public().String()
	hostCrt := filepath.Join(dir, "host-a.crt")
	sign := func(args ...string) (string, error) {
		return run(t, "", append([]string{"ca", "sign", "--ca-key", key, "--ca-cert", crt, "--public-key", pub}, args...)...)
	}
	if _, err := sign("--name", "host-a", "--subnet", "10.42.7.0/24", "--group", "web", "--group", "prod", "--out", hostCrt); err != nil {
		t.Fatal(err)
	}
	if _, err := sign("--name", "host-a", "--subnet", "10.42.7.0/24", "--out", hostCrt); err == nil || !strings.Contains(err.Error(), "refusing to overwrite") {
		t.Fatalf("sign over an existing file: %v", err)
	}
	out, err = run(t, "", "ca", "verify", "--ca", crt, hostCrt)
	if err != nil || !strings.Contains(out, `ok: host "host-a", signed by CA "test-ca"`) {
		t.Fatalf("verify: %q %v", out, err)
	}

	// The wrong CA: a clear reason and what to do.
	_, err = run(t, "", "ca", "verify", "--ca", filepath.Join(otherDir, "ca.crt"), hostCrt)
	if err == nil || !strings.Contains(err.Error(), "does not verify (unknown_ca)") || !strings.Contains(err.Error(), "pass the ca.crt that signed it") {
		t.Fatalf("verify with the wrong CA: %v", err)
	}
	// A bundle of both CAs (rotation) verifies.
	a, _ := os.ReadFile(crt)
	b, _ := os.ReadFile(filepath.Join(otherDir, "ca.crt"))
	bundle := filepath.Join(dir, "bundle.crt")
	os.WriteFile(bundle, append(b, a...), 0o644)
	if _, err := run(t, "", "ca", "verify", "--ca", bundle, hostCrt); err != nil {
		t.Fatalf("bundle: %v", err)
	}

	// print --json, then revoke by the printed fingerprint.
	out, err = run(t, "", "ca", "print", "--json", hostCrt)
	if err != nil {
		t.Fatal(err)
	}
	var j struct {
		Kind, Name, Fingerprint, PublicKey string
		Prefixes, Groups                   []string
		NotAfter                           time.Time `json:"not_after"`
	}
	if err := json.Unmarshal([]byte(out), &j); err != nil {
		t.Fatalf("print --json: %v\n%s", err, out)
	}
	if j.Kind != "host" || j.Name != "host-a" || len(j.Fingerprint) != 64 || strings.Join(j.Prefixes, ",") != "10.42.7.0/24" || strings.Join(j.Groups, ",") != "prod,web" {
		t.Fatalf("print --json: %+v", j)
	}
	if d := time.Until(j.NotAfter); d < 364*24*time.Hour || d > 366*24*time.Hour {
		t.Fatalf("default validity ends in %v, want a year", d)
	}
	bl := filepath.Join(dir, "blocklist")
	os.WriteFile(bl, []byte("# stolen\n"+j.Fingerprint+"\n"), 0o644)
	_, err = run(t, "", "ca", "verify", "--ca", crt, "--blocklist", bl, hostCrt)
	if err == nil || !strings.Contains(err.Error(), "(blocklisted)") {
		t.Fatalf("verify blocklisted: %v", err)
	}
	out, err = run(t, "", "ca", "print", hostCrt)
	if err != nil || !strings.Contains(out, j.Fingerprint) || !strings.Contains(out, "10.42.7.0/24") {
		t.Fatalf("print: %q %v", out, err)
	}

	// The CA's constraint and input mistakes are refused with advice.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--name", "h", "--subnet", "10.43.0.0/24", "--out", filepath.Join(dir, "x.crt")}, "outside the CA"},
		{[]string{"--name", "h", "--subnet", "10.42.7.1/24", "--out", filepath.Join(dir, "x.crt")}, "did you mean 10.42.7.0/24"},
		{[]string{"--name", "h", "--duration", "soon", "--out", filepath.Join(dir, "x.crt")}, "--duration"},
		{[]string{"--name", "", "--out", filepath.Join(dir, "x.crt")}, "--name and --public-key are required"},
	} {
		if _, err := sign(tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("sign %v: %v, want %q", tc.args, err, tc.want)
		}
	}
	if _, err := run(t, "", "ca", "sign", "--ca-key", key, "--ca-cert", crt, "--name", "h", "--public-key", "nope"); err == nil || !strings.Contains(err.Error(), "weft keygen --public") {
		t.Errorf("bad public key: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "x.crt")); err == nil {
		t.Error("a refused sign wrote a file")
	}
	os.Chmod(key, 0o644)
	if _, err := sign("--name", "h2", "--out", filepath.Join(dir, "h2.crt")); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("world-readable CA key: %v", err)
	}
}

func TestCA_SignCappedByCA(t *testing.T) {
	dir := t.TempDir()
	if _, err := run(t, "", "ca", "init", "--duration", "30d", "--out-dir", dir); err != nil {
		t.Fatal(err)
	}
	priv, _ := crypto.GeneratePrivateKey()
	host := filepath.Join(dir, "h.crt")
	out, err := run(t, "", "ca", "sign", "--ca-key", filepath.Join(dir, "ca.key"), "--ca-cert", filepath.Join(dir, "ca.crt"),
		"--name", "h", "--public-key", priv.Public().String(), "--out", host)
	if err != nil || !strings.Contains(out, "cut to the CA's") {
		t.Fatalf("sign: %q %v", out, err)
	}
	if _, err := run(t, "", "ca", "verify", "--ca", filepath.Join(dir, "ca.crt"), host); err != nil {
		t.Fatal(err)
	}
	// A CA certificate is no host certificate.
	if _, err := run(t, "", "ca", "verify", "--ca", filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.crt")); err == nil || !strings.Contains(err.Error(), "wrong_kind") {
		t.Fatalf("verify a CA certificate: %v", err)
	}
	if _, err := run(t, "", "ca", "verify", host); err == nil || !strings.Contains(err.Error(), "--ca is required") {
		t.Fatalf("verify without --ca: %v", err)
	}
	if out, err := run(t, "", "ca", "print", filepath.Join(dir, "ca.crt")); err != nil || !strings.Contains(out, "valid (self-signed)") || !strings.Contains(out, "any (unconstrained)") {
		t.Fatalf("print ca.crt: %q %v", out, err)
	}
	if _, err := run(t, "", "ca", "sign", "--ca-key", filepath.Join(dir, "ca.key"), "--ca-cert", filepath.Join(dir, "ca.crt"),
		"--name", "a/b", "--public-key", priv.Public().String()); err == nil || !strings.Contains(err.Error(), "--out") {
		t.Fatalf("name with a slash and no --out: %v", err)
	}
}

func TestParseValidity(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"1y": 365 * 24 * time.Hour, "90d": 90 * 24 * time.Hour, "8760h": 8760 * time.Hour, "1h30m": 90 * time.Minute,
	} {
		if got, err := parseValidity(in); err != nil || got != want {
			t.Errorf("parseValidity(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0d", "-1y", "1.5y", "y", "x", "0s", "-5h", "999999y"} {
		if _, err := parseValidity(in); err == nil {
			t.Errorf("parseValidity(%q) accepted", in)
		}
	}
}
