package api

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/shardline/shardline"
)

func TestStatusOf(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{fmt.Errorf("x: %w", shardline.ErrInvalidTenant), 400},
		{fmt.Errorf("x: %w", shardline.ErrInvalidShard), 400},
		{fmt.Errorf("x: %w", shardline.ErrShardNotFound), 404},
		{fmt.Errorf("x: %w", shardline.ErrTenantNotFound), 404},
		{fmt.Errorf("x: %w", shardline.ErrConflict), 409},
		{fmt.Errorf("x: %w", shardline.ErrNoPlacement), 503},
		{badRequest("nope"), 400},
		{errors.New("etcd exploded"), 500},
	} {
		if got := statusOf(tc.err); got != tc.want {
			t.Errorf("statusOf(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

func TestPanicIsA500(t *testing.T) {
	var logs strings.Builder
	s := &Server{logger: slog.New(slog.NewTextHandler(&logs, nil)), ready: func() bool { return true }, mux: http.NewServeMux()}
	s.mux.HandleFunc("GET /boom", func(http.ResponseWriter, *http.Request) { panic("boom") })
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest("GET", "/boom", nil))
	body, _ := io.ReadAll(rec.Body)
	if rec.Code != 500 || !strings.Contains(string(body), `"error":"internal error"`) {
		t.Errorf("panic answered %d %s", rec.Code, body)
	}
	if !strings.Contains(logs.String(), "panic serving request") {
		t.Errorf("panic not logged: %s", logs.String())
	}
}
