package shardline

import (
	"fmt"
	"strconv"
	"strings"
)

// LSN is a PostgreSQL write-ahead log position.
type LSN uint64

// ParseLSN parses PostgreSQL's text form "X/Y" (hexadecimal halves).
func ParseLSN(s string) (LSN, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok || hi == "" || lo == "" || len(hi) > 8 || len(lo) > 8 {
		return 0, fmt.Errorf("invalid LSN %q: want X/Y in hexadecimal", s)
	}
	h, err := strconv.ParseUint(hi, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("invalid LSN %q: %w", s, err)
	}
	l, err := strconv.ParseUint(lo, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("invalid LSN %q: %w", s, err)
	}
	return LSN(h<<32 | l), nil
}

// String formats l as PostgreSQL does.
func (l LSN) String() string { return fmt.Sprintf("%X/%X", uint64(l)>>32, uint64(l)&0xffffffff) }

// MarshalText and UnmarshalText make LSN travel as "X/Y" in JSON.
func (l LSN) MarshalText() ([]byte, error) { return []byte(l.String()), nil }

func (l *LSN) UnmarshalText(b []byte) error {
	v, err := ParseLSN(string(b))
	if err != nil {
		return err
	}
	*l = v
	return nil
}

// Token is a read-your-writes token: a WAL position on one shard. It means
// nothing on another shard.
type Token struct {
	Shard ShardID
	LSN   LSN
}

// String formats the token as "shard:X/Y"; the zero token is "".
func (t Token) String() string {
	if t.Shard == "" {
		return ""
	}
	return string(t.Shard) + ":" + t.LSN.String()
}

// ParseToken parses "shard:X/Y"; "" is the zero token.
func ParseToken(s string) (Token, error) {
	if s == "" {
		return Token{}, nil
	}
	shard, lsn, ok := strings.Cut(s, ":")
	if !ok {
		return Token{}, fmt.Errorf("invalid token %q: want shard:X/Y, as SHOW shardline.lsn prints it", s)
	}
	if err := ValidateShardID(shard); err != nil {
		return Token{}, fmt.Errorf("invalid token %q: %w", s, err)
	}
	l, err := ParseLSN(lsn)
	if err != nil {
		return Token{}, fmt.Errorf("invalid token %q: %w", s, err)
	}
	return Token{Shard: ShardID(shard), LSN: l}, nil
}
