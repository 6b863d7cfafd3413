package clientkey

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/meshkit/meshkit/internal/principal"
)

// keyOf runs Of on a request from remoteAddr with the given
// X-Forwarded-For, through an engine that trusts trusted.
func keyOf(t testing.TB, trusted []string, remoteAddr, xff string, p *principal.Principal) string {
	t.Helper()
	engine := gin.New()
	if err := engine.SetTrustedProxies(trusted); err != nil {
		t.Fatal(err)
	}
	var key string
	engine.GET("/", func(c *gin.Context) {
		if p != nil {
			c.Request = c.Request.WithContext(principal.WithContext(c.Request.Context(), *p))
		}
		key = Of(c)
	})
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.RemoteAddr = remoteAddr
	if xff != "" {
		req.Header.Set("X-Forwarded-For", xff)
	}
	engine.ServeHTTP(httptest.NewRecorder(), req)
	return key
}

func TestOf(t *testing.T) {
	alice := &principal.Principal{Subject: "alice", Issuer: "https://idp.example"}
	for _, tt := range []struct {
		name       string
		trusted    []string
		remoteAddr string
		xff        string
		principal  *principal.Principal
		want       string
	}{
		{"IPv4 peer", nil, "192.0.2.7:51000", "", nil, "ip:192.0.2.7"},
		{"IPv6 peer keyed by its /64", nil, "[2001:db8:1:2:3:4:5:6]:51000", "", nil, "ip:2001:db8:1:2::/64"},
		{"another address of the same /64", nil, "[2001:db8:1:2:ffff::1]:443", "", nil, "ip:2001:db8:1:2::/64"},
		{"IPv4-mapped IPv6 is IPv4", nil, "[::ffff:192.0.2.7]:51000", "", nil, "ip:192.0.2.7"},
		{"link-local with a zone", nil, "[fe80::1%eth0]:51000", "", nil, "ip:fe80::/64"},
		{"untrusted peer's X-Forwarded-For is ignored", nil, "192.0.2.7:1", "198.51.100.1", nil, "ip:192.0.2.7"},
		{"trusted proxy's X-Forwarded-For is believed", []string{"192.0.2.0/24"}, "192.0.2.7:1", "198.51.100.1", nil, "ip:198.51.100.1"},
		{"the rightmost untrusted hop counts", []string{"192.0.2.0/24"}, "192.0.2.7:1", "203.0.113.5, 198.51.100.1, 192.0.2.9", nil, "ip:198.51.100.1"},
		{"a principal wins over the address", nil, "192.0.2.7:1", "", alice, "principal:https://idp.example|alice"},
		{"a principal without a subject is anonymous", nil, "192.0.2.7:1", "", &principal.Principal{PeerID: "x"}, "ip:192.0.2.7"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := keyOf(t, tt.trusted, tt.remoteAddr, tt.xff, tt.principal); got != tt.want {
				t.Errorf("Of = %q, want %q", got, tt.want)
			}
		})
	}
}

// FuzzOfIgnoresForwardingFromUntrustedPeers: with no trusted proxy,
// nothing a client writes in X-Forwarded-For changes its key, so it cannot
// make itself a fresh bucket.
func FuzzOfIgnoresForwardingFromUntrustedPeers(f *testing.F) {
	f.Add([]byte{192, 0, 2, 7}, "198.51.100.1")
	f.Add([]byte{0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6}, "::1, 10.0.0.1")
	f.Add([]byte{127, 0, 0, 1}, "garbage, ,,")
	f.Fuzz(func(t *testing.T, ip []byte, xff string) {
		addr, ok := netip.AddrFromSlice(ip)
		if !ok || strings.ContainsAny(xff, "\r\n\x00") {
			return
		}
		remote := netip.AddrPortFrom(addr, 40000).String()
		want := keyOf(t, nil, remote, "", nil)
		if got := keyOf(t, nil, remote, xff, nil); got != want {
			t.Fatalf("X-Forwarded-For %q from an untrusted peer changed the key from %q to %q", xff, want, got)
		}
		if !strings.HasPrefix(want, "ip:") || len(want) < 4 {
			t.Fatalf("key %q of %s", want, remote)
		}
	})
}

// FuzzAddrKeyGroupsA64: every address of an IPv6 /64 has one key, and
// addresses of different /64s (or different IPv4 addresses) have different
// ones.
func FuzzAddrKeyGroupsA64(f *testing.F) {
	f.Add([]byte("2001:db8:0:1::"), uint64(1), uint64(2))
	f.Add([]byte("192.0.2.1......."), uint64(0), uint64(0xffff))
	f.Fuzz(func(t *testing.T, prefix []byte, low1, low2 uint64) {
		if len(prefix) < 16 {
			return
		}
		var a, b [16]byte
		copy(a[:8], prefix)
		copy(b[:8], prefix)
		for i := range 8 {
			a[15-i], b[15-i] = byte(low1>>(8*i)), byte(low2>>(8*i))
		}
		x, y := netip.AddrFrom16(a), netip.AddrFrom16(b)
		kx, ky := addrKey(x.String()), addrKey(y.String())
		if x.Is4In6() || y.Is4In6() {
			// IPv4-mapped: keyed as IPv4, one address each.
			if (kx == ky) != (x == y) {
				t.Fatalf("%s -> %s, %s -> %s", x, kx, y, ky)
			}
			return
		}
		if kx != ky {
			t.Fatalf("one /64, two keys: %s -> %s, %s -> %s", x, kx, y, ky)
		}
		b[0] ^= 0x80 // another /64
		if z := netip.AddrFrom16(b); !z.Is4In6() && addrKey(z.String()) == kx {
			t.Fatalf("two /64s, one key: %s and %s -> %s", x, z, kx)
		}
	})
}

// FuzzAddrKeyOfAnyString: whatever string comes in, an address gets the key
// of its canonical form, so that one client cannot write itself two ways.
func FuzzAddrKeyOfAnyString(f *testing.F) {
	for _, s := range []string{"192.0.2.1", "::ffff:192.0.2.1", "2001:DB8::1", "fe80::1%eth0", "010.0.0.1", "1.2.3.4%x", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := addrKey(s)
		a, err := netip.ParseAddr(s)
		if err != nil {
			if got != s {
				t.Fatalf("addrKey(%q) = %q, want the input back for what is no address", s, got)
			}
			return
		}
		if want := addrKey(a.WithZone("").Unmap().String()); got != want {
			t.Fatalf("addrKey(%q) = %q, but its canonical form %s gives %q", s, got, a, want)
		}
	})
}
