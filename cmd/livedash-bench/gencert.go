package main

// gencert writes what a TLS benchmark run serves with: a self-signed
// certificate for the loopback names (cert.pem, key.pem: ECDSA P-256, a
// day's validity) and a web-config file (web.yml) for `livedash serve
// --web.config.file`, with a basic_auth_users entry (bcrypt) when -basic
// is given. scripts/loadbench.sh's scenario T makes its servers' files
// with it. For benchmarks on loopback only: the key is written unencrypted
// and the load tool does not verify the certificate anyway.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// loginUser is what gencert accepts as a user name: it goes into YAML
// unquoted-safe and never needs escaping.
var loginUser = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

func runGenCert(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("livedash-bench gencert", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "directory to write cert.pem, key.pem and web.yml into (created if missing)")
	login := fs.String("basic", "", "user:password: add this login to web.yml's basic_auth_users (bcrypt)")
	cost := fs.Int("cost", bcrypt.DefaultCost, "bcrypt cost of the login's hash")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("gencert: unexpected argument %q", fs.Arg(0))
	case *dir == "":
		return errors.New("gencert: -dir is required")
	case *cost < bcrypt.MinCost || *cost > bcrypt.MaxCost:
		return fmt.Errorf("gencert: -cost %d, want %d…%d", *cost, bcrypt.MinCost, bcrypt.MaxCost)
	}
	web := "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n"
	if *login != "" {
		user, password, ok := strings.Cut(*login, ":")
		if !ok || !loginUser.MatchString(user) || password == "" {
			return errors.New("gencert: -basic: want user:password, the user of letters, digits, '_', '.', '-'")
		}
		hash, err := bcrypt.GenerateFromPassword([]byte(password), *cost)
		if err != nil {
			return fmt.Errorf("gencert: %w", err)
		}
		web += fmt.Sprintf("basic_auth_users:\n  %s: '%s'\n", user, hash)
	}
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		return fmt.Errorf("gencert: %w", err)
	}
	certPEM, keyPEM, err := selfSigned(time.Now())
	if err != nil {
		return fmt.Errorf("gencert: %w", err)
	}
	for name, data := range map[string][]byte{"cert.pem": certPEM, "key.pem": keyPEM, "web.yml": []byte(web)} {
		if err := os.WriteFile(filepath.Join(*dir, name), data, 0o600); err != nil {
			return fmt.Errorf("gencert: %w", err)
		}
	}
	fmt.Fprintln(stdout, filepath.Join(*dir, "web.yml"))
	return nil
}

// selfSigned returns a self-signed ECDSA P-256 certificate for 127.0.0.1,
// ::1 and localhost, valid for a day from now, and its key, as PEM.
func selfSigned(now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "livedash-bench"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), nil
}
