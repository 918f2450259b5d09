package netloop

import (
	"errors"
	"os"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ring is the loop's io_uring instance: the loop queues the sends and
// receives its tasks ask for, plus one epoll wait, and submits them all
// with one io_uring_enter per loop iteration (ringio.go says what each
// operation does there).
//
// Loop goroutine only (the ring is set up single-issuer: after enable, only
// the loop's locked thread submits).
type ring struct {
	fd int

	sqMem, cqMem, sqeMem []byte
	sqHead, sqTail       *uint32
	sqMask               uint32
	sqEntries            uint32
	cqHead, cqTail       *uint32
	cqMask               uint32
	cqes                 []cqe
	sqes                 []sqe

	queued uint32 // SQEs written since the last submit
	epoch  uint64 // how many times every queued SQE was submitted

	waitFlags uintptr // extra io_uring_enter flags of a wait

	// boundArg bounds a wait to boundedWait (enter's bounded); boundTS
	// is its timeout, which boundArg points to.
	boundArg getEventsArg
	boundTS  kernelTimespec
}

// boundedWait is how long a wait that counts on sends completing in full
// may last before the loop looks at their completions (ringPoll).
const boundedWait = time.Millisecond

// Kernel ABI (include/uapi/linux/io_uring.h).
const (
	opPollAdd     = 6
	opAsyncCancel = 14
	opSend        = 26
	opRecv        = 27
	opEpollWait   = 59

	recvPollFirst = 1 << 0 // IORING_RECVSEND_POLL_FIRST, in an SQE's ioprio (Linux 5.19)

	setupCQSize        = 1 << 3
	setupRDisabled     = 1 << 6
	setupSubmitAll     = 1 << 7
	setupCoopTaskrun   = 1 << 8
	setupSingleIssuer  = 1 << 12
	setupDeferTaskrun  = 1 << 13
	featSingleMmap     = 1 << 0
	featNoIOWait       = 1 << 17
	enterGetEvents     = 1 << 0
	enterExtArg        = 1 << 3
	enterNoIOWait      = 1 << 7
	registerProbe      = 8
	registerEnableRing = 12
	probeOpSupported   = 1 << 0

	offSQRing = 0
	offCQRing = 0x8000000
	offSQEs   = 0x10000000
)

type sqe struct {
	opcode   uint8
	flags    uint8
	ioprio   uint16
	fd       int32
	off      uint64
	addr     uint64
	len      uint32
	opFlags  uint32
	userData uint64
	bufIndex uint16
	pers     uint16
	spliceFd int32
	addr3    uint64
	_        uint64
}

// getEventsArg is struct io_uring_getevents_arg, passed with
// IORING_ENTER_EXT_ARG (Linux 5.11).
type getEventsArg struct {
	sigmask     uint64
	sigmaskSz   uint32
	minWaitUsec uint32
	ts          uint64 // *kernelTimespec
}

type kernelTimespec struct{ sec, nsec int64 }

type cqe struct {
	userData uint64
	res      int32
	flags    uint32
}

type sqringOffsets struct {
	head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
	userAddr                                                        uint64
}

type cqringOffsets struct {
	head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
	userAddr                                                        uint64
}

type uringParams struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFd uint32
	resv                                                                   [3]uint32
	sqOff                                                                  sqringOffsets
	cqOff                                                                  cqringOffsets
}

type probeOp struct {
	op, resv uint8
	flags    uint16
	resv2    uint32
}

type probe struct {
	lastOp, opsLen uint8
	resv           uint16
	resv2          [3]uint32
	ops            [64]probeOp
}

// errNoRing means the kernel offers no io_uring with what the loop needs
// (too old, disabled by sysctl or seccomp, or lacking EPOLL_WAIT).
var errNoRing = errors.New("netloop: io_uring unavailable")

// newRing sets up a disabled ring (enable makes the calling thread its only
// submitter) with entries submission slots.
func newRing(entries uint32) (*ring, error) {
	base := uint32(setupCQSize | setupRDisabled | setupSubmitAll | setupSingleIssuer)
	var fd int
	var p uringParams
	var err error
	// DEFER_TASKRUN (6.1) runs completion work only when the loop asks
	// for completions; COOP_TASKRUN (5.19) is the fallback.
	for _, extra := range []uint32{setupDeferTaskrun, setupCoopTaskrun, 0} {
		p = uringParams{flags: base | extra, cqEntries: entries * 16}
		fd, err = setup(entries, &p)
		if err == nil {
			break
		}
	}
	if err != nil {
		return nil, errors.Join(errNoRing, os.NewSyscallError("io_uring_setup", err))
	}
	r := &ring{fd: fd}
	r.boundTS = kernelTimespec{nsec: int64(boundedWait)}
	r.boundArg.ts = uint64(uintptr(unsafe.Pointer(&r.boundTS))) // r is on the heap and outlives every enter
	if p.features&featNoIOWait != 0 {
		// A loop waiting for its sockets is idle, not waiting for a disk:
		// without this (Linux 6.15) the kernel counts it as I/O wait, one
		// unit of load average per idle router and its CPU shown as
		// iowait.
		r.waitFlags = enterNoIOWait
	}
	if err := r.mmap(&p); err != nil {
		r.close()
		return nil, err
	}
	if !r.supports(opSend, opRecv, opEpollWait, opAsyncCancel) {
		r.close()
		return nil, errors.Join(errNoRing, errors.New("kernel lacks IORING_OP_EPOLL_WAIT (Linux 6.15)"))
	}
	return r, nil
}

func setup(entries uint32, p *uringParams) (int, error) {
	fd, _, e := unix.Syscall(unix.SYS_IO_URING_SETUP, uintptr(entries), uintptr(unsafe.Pointer(p)), 0)
	if e != 0 {
		return -1, e
	}
	return int(fd), nil
}

func (r *ring) mmap(p *uringParams) error {
	sqSize := int(p.sqOff.array + p.sqEntries*4)
	cqSize := int(p.cqOff.cqes + p.cqEntries*uint32(unsafe.Sizeof(cqe{})))
	if p.features&featSingleMmap != 0 && cqSize > sqSize {
		sqSize = cqSize
	}
	var err error
	r.sqMem, err = unix.Mmap(r.fd, offSQRing, sqSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return os.NewSyscallError("mmap", err)
	}
	if p.features&featSingleMmap != 0 {
		r.cqMem = r.sqMem
	} else if r.cqMem, err = unix.Mmap(r.fd, offCQRing, cqSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		return os.NewSyscallError("mmap", err)
	}
	sqeSize := int(p.sqEntries) * int(unsafe.Sizeof(sqe{}))
	if r.sqeMem, err = unix.Mmap(r.fd, offSQEs, sqeSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		return os.NewSyscallError("mmap", err)
	}
	r.sqHead = (*uint32)(unsafe.Pointer(&r.sqMem[p.sqOff.head]))
	r.sqTail = (*uint32)(unsafe.Pointer(&r.sqMem[p.sqOff.tail]))
	r.sqMask = *(*uint32)(unsafe.Pointer(&r.sqMem[p.sqOff.ringMask]))
	r.sqEntries = p.sqEntries
	array := unsafe.Slice((*uint32)(unsafe.Pointer(&r.sqMem[p.sqOff.array])), p.sqEntries)
	for i := range array {
		array[i] = uint32(i) // slot i of the ring is SQE i
	}
	r.sqes = unsafe.Slice((*sqe)(unsafe.Pointer(&r.sqeMem[0])), p.sqEntries)
	r.cqHead = (*uint32)(unsafe.Pointer(&r.cqMem[p.cqOff.head]))
	r.cqTail = (*uint32)(unsafe.Pointer(&r.cqMem[p.cqOff.tail]))
	r.cqMask = *(*uint32)(unsafe.Pointer(&r.cqMem[p.cqOff.ringMask]))
	r.cqes = unsafe.Slice((*cqe)(unsafe.Pointer(&r.cqMem[p.cqOff.cqes])), p.cqEntries)
	return nil
}

func (r *ring) supports(ops ...uint8) bool {
	var pr probe
	_, _, e := unix.Syscall6(unix.SYS_IO_URING_REGISTER, uintptr(r.fd), registerProbe, uintptr(unsafe.Pointer(&pr)), uintptr(len(pr.ops)), 0, 0)
	if e != 0 {
		return false
	}
	for _, op := range ops {
		if op > pr.lastOp || int(op) >= len(pr.ops) || pr.ops[op].flags&probeOpSupported == 0 {
			return false
		}
	}
	return true
}

// enable makes the calling thread the ring's submitter.
func (r *ring) enable() error {
	_, _, e := unix.Syscall6(unix.SYS_IO_URING_REGISTER, uintptr(r.fd), registerEnableRing, 0, 0, 0, 0)
	if e != 0 {
		return os.NewSyscallError("io_uring_register", e)
	}
	return nil
}

// next returns a zeroed SQE to fill, submitting what is queued first when
// the submission ring is full.
func (r *ring) next() *sqe {
	for {
		tail := *r.sqTail // only this thread writes the tail
		if tail-atomic.LoadUint32(r.sqHead) < r.sqEntries {
			s := &r.sqes[tail&r.sqMask]
			*s = sqe{}
			atomic.StoreUint32(r.sqTail, tail+1)
			r.queued++
			return s
		}
		_ = r.enter(0, false)
	}
}

// prep fills s for a send, receive or epoll wait into buf.
func (s *sqe) prep(op uint8, fd int, buf unsafe.Pointer, n int, flags uint32, userData uint64) {
	s.opcode = op
	s.fd = int32(fd)
	s.addr = uint64(uintptr(buf))
	s.len = uint32(n)
	s.opFlags = flags
	s.userData = userData
}

// enter submits the queued SQEs and waits until at least minComplete
// completions are ready or, when bounded, boundedWait has passed. A wait
// may end early (a signal); callers reap and loop.
func (r *ring) enter(minComplete uint32, bounded bool) error {
	for {
		var n uintptr
		var e unix.Errno
		switch {
		case minComplete > 0 && bounded:
			n, _, e = unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(r.queued), uintptr(minComplete),
				enterGetEvents|enterExtArg|r.waitFlags, uintptr(unsafe.Pointer(&r.boundArg)), unsafe.Sizeof(r.boundArg))
		case minComplete > 0:
			// May sleep: tell the scheduler, as for epoll_wait.
			n, _, e = unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(r.queued), uintptr(minComplete), enterGetEvents|r.waitFlags, 0, 0)
		default:
			n, _, e = unix.RawSyscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(r.queued), 0, enterGetEvents, 0, 0)
		}
		switch e {
		case 0:
			r.queued -= min(uint32(n), r.queued)
			if r.queued == 0 {
				r.epoch++
			}
			return nil
		case unix.EINTR:
			if minComplete == 0 {
				continue
			}
			return nil
		case unix.ETIME:
			// A bounded wait ran out with no completion; the kernel
			// reports it only when it submitted nothing.
			return nil
		case unix.EAGAIN, unix.EBUSY:
			// Completions back up: the caller reaps, the next enter
			// submits the rest.
			return nil
		}
		return os.NewSyscallError("io_uring_enter", e)
	}
}

// reap appends the ready completions to dst and frees their slots.
func (r *ring) reap(dst []cqe) []cqe {
	head := *r.cqHead // only this thread writes the head
	tail := atomic.LoadUint32(r.cqTail)
	for ; head != tail; head++ {
		dst = append(dst, r.cqes[head&r.cqMask])
	}
	atomic.StoreUint32(r.cqHead, head)
	return dst
}

func (r *ring) close() {
	if r.sqeMem != nil {
		_ = unix.Munmap(r.sqeMem)
	}
	if r.cqMem != nil && &r.cqMem[0] != &r.sqMem[0] {
		_ = unix.Munmap(r.cqMem)
	}
	if r.sqMem != nil {
		_ = unix.Munmap(r.sqMem)
	}
	unix.Close(r.fd)
}
