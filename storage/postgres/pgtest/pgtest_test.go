package pgtest

import (
	"net"
	"strconv"
	"testing"
)

func TestFreePortRange(t *testing.T) {
	base, err := freePortRange(4)
	if err != nil {
		t.Fatal(err)
	}
	if base < portLow || base+4 > portHigh {
		t.Fatalf("base %d outside %d..%d", base, portLow, portHigh)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(base+2)))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if rangeFree(base, 4) {
		t.Fatalf("rangeFree(%d, 4) with %d taken = true", base, base+2)
	}
}
