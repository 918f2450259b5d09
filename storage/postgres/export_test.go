package postgres

import "testing"

// ReleaseLockForTest drops l's directory lock without stopping its
// servers, as the death of its process would.
func ReleaseLockForTest(t *testing.T, l *Local) {
	t.Helper()
	l.lock.release()
}
