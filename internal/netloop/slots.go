package netloop

// slots hands out small integer ids for the user data of SQEs: the kernel
// gives a completion back with its id, and the id finds the task or
// connection it belongs to. Freed ids are reused. Loop goroutine only.
type slots[T any] struct {
	items []*T
	free  []int
}

// add returns a free id for v.
func (s *slots[T]) add(v *T) int {
	if n := len(s.free); n > 0 {
		id := s.free[n-1]
		s.free = s.free[:n-1]
		s.items[id] = v
		return id
	}
	s.items = append(s.items, v)
	return len(s.items) - 1
}

// get returns what holds id, or nil (freed, or never handed out).
func (s *slots[T]) get(id uint64) *T {
	if id >= uint64(len(s.items)) {
		return nil
	}
	return s.items[id]
}

// remove frees id.
func (s *slots[T]) remove(id int) {
	s.items[id] = nil
	s.free = append(s.free, id)
}
