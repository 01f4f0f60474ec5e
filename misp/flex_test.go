package misp

import (
	"encoding/json"
	"testing"
)

func TestFlexString(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr bool
	}{
		{`"12"`, "12", false}, {`12`, "12", false}, {`-3`, "-3", false}, {`1.5e3`, "1.5e3", false}, {`null`, "", false},
		{`""`, "", false}, {`"a\"b"`, `a"b`, false}, {`true`, "", true}, {`{}`, "", true}, {`[]`, "", true},
	}
	for _, tt := range tests {
		var got struct {
			V flexString `json:"v"`
		}
		err := json.Unmarshal([]byte(`{"v":`+tt.in+`}`), &got)
		if (err != nil) != tt.wantErr || string(got.V) != tt.want {
			t.Errorf("%s: got %q, err %v; want %q, error %v", tt.in, got.V, err, tt.want, tt.wantErr)
		}
	}
}

func TestFlexInt(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{`"1795727898"`, 1795727898, false}, {`2`, 2, false}, {`"0"`, 0, false}, {`""`, 0, false}, {`null`, 0, false},
		{`" 7 "`, 7, false}, {`"2.0"`, 2, false}, {`3e2`, 300, false}, {`"2.5"`, 0, true}, {`"v3"`, 0, true},
		{`true`, 0, true}, {`[1]`, 0, true}, {`"1e300"`, 0, true},
	}
	for _, tt := range tests {
		var got struct {
			V flexInt `json:"v"`
		}
		err := json.Unmarshal([]byte(`{"v":`+tt.in+`}`), &got)
		if (err != nil) != tt.wantErr || (!tt.wantErr && int64(got.V) != tt.want) {
			t.Errorf("%s: got %d, err %v; want %d, error %v", tt.in, got.V, err, tt.want, tt.wantErr)
		}
	}
}

func TestFlexBool(t *testing.T) {
	tests := []struct {
		in      string
		want    bool
		wantErr bool
	}{
		{`true`, true, false}, {`false`, false, false}, {`null`, false, false}, {`1`, true, false}, {`0`, false, false},
		{`"1"`, true, false}, {`"0"`, false, false}, {`""`, false, false}, {`"true"`, true, false}, {`"False"`, false, false},
		{`2`, true, false}, {`"yes"`, false, true}, {`{}`, false, true}, {`[true]`, false, true},
	}
	for _, tt := range tests {
		var got struct {
			V flexBool `json:"v"`
		}
		err := json.Unmarshal([]byte(`{"v":`+tt.in+`}`), &got)
		if (err != nil) != tt.wantErr || bool(got.V) != tt.want {
			t.Errorf("%s: got %v, err %v; want %v, error %v", tt.in, got.V, err, tt.want, tt.wantErr)
		}
	}
}

func TestIsUUIDAndID(t *testing.T) {
	for s, want := range map[string]bool{
		e1UUID: true, "853475BB-CC6B-4E07-B345-ED9E47520557": true, "853475bb-cc6b-4e07-b345-ed9e4752055": false,
		"853475bb_cc6b-4e07-b345-ed9e47520557": false, "853475bb-cc6b-4e07-b345-ed9e4752055g": false, "": false,
	} {
		if isUUID(s) != want {
			t.Errorf("isUUID(%q) = %v", s, !want)
		}
	}
	for s, want := range map[string]bool{"1": true, "137": true, "": false, "-1": false, "1a": false, "../1": false, "12345678901234567890": false} {
		if isID(s) != want {
			t.Errorf("isID(%q) = %v", s, !want)
		}
	}
}

func TestTruncateKeepsUTF8(t *testing.T) {
	if got := truncate("hôte", 2); got != "h…" {
		t.Errorf("got %q", got)
	}
	if got := truncate("abc", 5); got != "abc" {
		t.Errorf("got %q", got)
	}
}
