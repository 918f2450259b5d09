package postgres

import (
	"fmt"
	"net"
	"strconv"
)

// checkPortFree reports whether port can be bound on 127.0.0.1. The error
// wraps ErrPortInUse.
func checkPortFree(port int) error {
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return fmt.Errorf("%w: %d on 127.0.0.1 (%v); free it (another PostgreSQL or a running `shardline up`?), or use another --dir with other ports",
			ErrPortInUse, port, err)
	}
	return ln.Close()
}
