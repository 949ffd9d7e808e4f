package main

import (
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"

	"github.com/rogpeppe/go-internal/testscript"
)

func init() {
	scriptCmds["servefiles"] = cmdServeFiles
}

// servefiles VAR DIR: serve DIR over https on a free loopback port until
// the script ends, set $VAR to its base URL, and make the server's
// certificate trusted by the programs the script runs (SSL_CERT_FILE).
func cmdServeFiles(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: servefiles VAR DIR")
	}
	srv := httptest.NewTLSServer(http.FileServer(http.Dir(ts.MkAbs(args[1]))))
	ts.Defer(srv.Close)
	cert := ts.MkAbs("servefiles-cert.pem")
	ts.Check(os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644))
	ts.Setenv("SSL_CERT_FILE", cert)
	ts.Setenv(args[0], srv.URL)
}
