package zmqpub

import (
	"bytes"
	"testing"
)

func TestParseHello(t *testing.T) {
	tests := []struct {
		name       string
		body       []byte
		user, pass string
		wantErr    bool
	}{
		{"user and password", []byte("\x04misp\x06s3cret"), "misp", "s3cret", false},
		{"empty user and password", []byte("\x00\x00"), "", "", false},
		{"empty body", nil, "", "", true},
		{"username longer than the body", []byte("\x09misp"), "", "", true},
		{"missing password length", []byte("\x04misp"), "", "", true},
		{"password shorter than announced", []byte("\x04misp\x09s3cret"), "", "", true},
		{"trailing bytes after the password", []byte("\x04misp\x02s3cret"), "", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			user, pass, err := parseHello(tt.body)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("parseHello(%q) = %q %q, want an error", tt.body, user, pass)
				}
				if bytes.Contains([]byte(err.Error()), []byte("s3cret")) {
					t.Fatalf("error %q repeats the password", err)
				}
				return
			}
			if err != nil || string(user) != tt.user || string(pass) != tt.pass {
				t.Fatalf("parseHello(%q) = %q %q %v, want %q %q", tt.body, user, pass, err, tt.user, tt.pass)
			}
		})
	}
}

func FuzzParseHello(f *testing.F) {
	f.Add([]byte("\x04misp\x06s3cret"))
	f.Add([]byte("\x00\x00"))
	f.Add([]byte("\xff"))
	f.Fuzz(func(t *testing.T, body []byte) {
		user, pass, err := parseHello(body)
		if err != nil {
			return
		}
		// Whatever is accepted must be exactly one well-formed HELLO.
		again := append(append(append([]byte{byte(len(user))}, user...), byte(len(pass))), pass...)
		if !bytes.Equal(again, body) {
			t.Fatalf("accepted %q as user %q pass %q", body, user, pass)
		}
	})
}
