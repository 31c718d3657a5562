package catalog

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestEncodeCatalog_RoundTrip(t *testing.T) {
	tests := []struct {
		name string
		in   []ServiceHealth
		want string
	}{
		{"empty", nil, ""},
		{"one", []ServiceHealth{{Service: Service{Name: "web", Port: 80}}}, "1;web:80"},
		{"sorted, all fields", []ServiceHealth{
			{Service: Service{Name: "web", Port: 80, Tags: []string{"http", "v2"}, Weight: 3}},
			{Service: Service{Name: "db", Port: 5432}, Health: HealthCritical},
			{Service: Service{Name: "api", Port: 8080, Weight: 1}, Health: HealthWarning},
		}, "1;api:8080:w;db:5432:c;web:80::http,v2:3"},
		{"weight without tags", []ServiceHealth{{Service: Service{Name: "a", Port: 1, Weight: 65535}}}, "1;a:1:::65535"},
		{"tags only", []ServiceHealth{{Service: Service{Name: "a", Port: 65535, Tags: []string{"x"}}}}, "1;a:65535::x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := EncodeCatalog(tt.in)
			if err != nil || got != tt.want {
				t.Fatalf("Encode = %q, %v; want %q", got, err, tt.want)
			}
			dec, err := DecodeCatalog(got)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if len(dec) != len(tt.in) {
				t.Fatalf("decoded %d services, want %d", len(dec), len(tt.in))
			}
			again, err := EncodeCatalog(dec)
			if err != nil || again != got {
				t.Fatalf("re-encode = %q, %v", again, err)
			}
		})
	}
}

func TestEncodeCatalog_Errors(t *testing.T) {
	if _, err := EncodeCatalog([]ServiceHealth{{Service: Service{Name: "a", Port: 1}}, {Service: Service{Name: "a", Port: 2}}}); !errors.Is(err, ErrInvalidService) {
		t.Fatalf("duplicate: %v", err)
	}
	if _, err := EncodeCatalog([]ServiceHealth{{Service: Service{Name: "a_b", Port: 1}}}); !errors.Is(err, ErrInvalidService) {
		t.Fatalf("bad name: %v", err)
	}
}

func TestDecodeCatalog_Errors(t *testing.T) {
	tests := []struct {
		in   string
		want error
	}{
		{"2;web:80", ErrCatalogVersion},
		{"1", ErrCatalogNonCanonical},
		{"1web:80", ErrCatalogSyntax},
		{"1;", ErrCatalogSyntax},
		{"1;web", ErrCatalogSyntax},
		{"1;web:", ErrCatalogSyntax},
		{"1;web:0", ErrCatalogSyntax},
		{"1;web:080", ErrCatalogSyntax},
		{"1;web:65536", ErrCatalogSyntax},
		{"1;web:+80", ErrCatalogSyntax},
		{"1;Web:80", ErrCatalogSyntax},
		{"1;web:80:x", ErrCatalogSyntax},
		{"1;web:80:", ErrCatalogNonCanonical},
		{"1;web:80:c:", ErrCatalogNonCanonical},
		{"1;web:80:::1", ErrCatalogNonCanonical},
		{"1;web:80:::0", ErrCatalogSyntax},
		{"1;web:80::a,,b", ErrCatalogSyntax},
		{"1;web:80::a b", ErrCatalogSyntax},
		{"1;web:80:c:t:2:x", ErrCatalogSyntax},
		{"1;web:80;api:80", ErrCatalogOrder},
		{"1;web:80;web:81", ErrCatalogOrder},
		{"1;" + strings.Repeat("a:1;", MaxCatalogLen/4) + "b:1", ErrCatalogTooLong},
	}
	for _, tt := range tests {
		t.Run(tt.in[:min(len(tt.in), 24)], func(t *testing.T) {
			_, err := DecodeCatalog(tt.in)
			if !errors.Is(err, tt.want) || !errors.Is(err, ErrBadCatalog) {
				t.Fatalf("Decode(%q) = %v, want %v", tt.in, err, tt.want)
			}
		})
	}
}

// realisticServices returns n services as a typical host registers them: 12-character
// names, a 4-digit port, one tag and a check (encoded critical: the worst case).
func realisticServices(n int) []Service {
	out := make([]Service, n)
	for i := range out {
		out[i] = Service{Name: fmt.Sprintf("service-%04d", i), Port: uint16(8000 + i), Tags: []string{"http"},
			Check: &CheckDef{Kind: CheckTCP, Target: "127.0.0.1:8000"}}
	}
	return out
}

// servicesInBudget is how many realisticServices fit in budget bytes.
func servicesInBudget(t testing.TB, budget int) int {
	n := 0
	for {
		l, err := worstCaseCatalogLen(realisticServices(n + 1))
		if err != nil {
			t.Fatal(err)
		}
		if l > budget {
			return n
		}
		n++
	}
}

func TestEncodeCatalog_Budget(t *testing.T) {
	one, _ := worstCaseCatalogLen(realisticServices(1))
	n := servicesInBudget(t, DefaultCatalogBudget)
	l, _ := worstCaseCatalogLen(realisticServices(n))
	t.Logf("realistic service (12-char name, 4-digit port, 1 tag, check critical) %q: %d bytes incl. separator",
		mustEncode(t, realisticServices(1)), one-1)
	t.Logf("%d services fit in %d bytes (%d used); %d fit in the whole 512", n, DefaultCatalogBudget, l, servicesInBudget(t, 512))
	if n < 15 {
		t.Fatalf("only %d realistic services fit in %d bytes", n, DefaultCatalogBudget)
	}
}

func mustEncode(t testing.TB, svcs []Service) string {
	shs := make([]ServiceHealth, len(svcs))
	for i, s := range svcs {
		shs[i] = ServiceHealth{Service: s, Health: HealthCritical}
	}
	v, err := EncodeCatalog(shs)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func FuzzDecodeCatalog(f *testing.F) {
	for _, s := range []string{"", "1;web:80", "1;api:8080:w;db:5432:c;web:80::http,v2:3", "1;a:1:::65535", mustEncode(f, realisticServices(3)), "2;x:1", "1;web:80:", "1;redis@10.42.3.7:6379:c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		dec, err := DecodeCatalog(in)
		if err != nil {
			if !errors.Is(err, ErrBadCatalog) {
				t.Fatalf("error without ErrBadCatalog: %v", err)
			}
			return
		}
		enc, err := EncodeCatalog(dec)
		if err != nil {
			t.Fatalf("decoded %q but cannot encode: %v", in, err)
		}
		if enc != in {
			t.Fatalf("not canonical: %q re-encodes as %q", in, enc)
		}
		dec2, err := DecodeCatalog(enc)
		if err != nil || !reflect.DeepEqual(dec, dec2) {
			t.Fatalf("decode→encode→decode unstable: %v\n%+v\n%+v", err, dec, dec2)
		}
	})
}
