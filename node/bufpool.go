package node

// Buffers for reading and writing, and the arrays of write queues, come from free
// lists, so that an idle connection holds none: a reader takes a buffer when bytes
// arrive and gives it back once they are handled, a writer takes one per batch and
// gives its queue back when the queue drains.
//
// The lists are bounded channels rather than sync.Pools: a pool is emptied by every
// garbage collection, and under load (when collections are frequent) the writers
// would then allocate per batch, which makes more garbage and more collections. A
// bounded list keeps at most its capacity of slices per size class whatever the
// load, and never blocks: an empty list allocates, a full one drops.

// freeList keeps empty slices of a few size classes.
type freeList[T any] struct {
	classes []freeClass[T]
}

type freeClass[T any] struct {
	size int // capacity of the slices of this class
	free chan []T
}

// newFreeList returns a free list with a class per size (smallest first), keeping
// at most keep[i] slices of sizes[i].
func newFreeList[T any](sizes, keep []int) *freeList[T] {
	f := &freeList[T]{classes: make([]freeClass[T], len(sizes))}
	for i, s := range sizes {
		f.classes[i] = freeClass[T]{size: s, free: make(chan []T, keep[i])}
	}
	return f
}

// get returns an empty slice with capacity for at least n elements (up to the
// largest class; append grows it past that): from the smallest class that fits,
// or a larger one when that class's list is empty.
func (f *freeList[T]) get(n int) []T {
	k := len(f.classes) - 1
	for i := range f.classes {
		if n <= f.classes[i].size {
			k = i
			break
		}
	}
	for i := k; i < len(f.classes); i++ {
		select {
		case s := <-f.classes[i].free:
			return s
		default:
		}
	}
	return make([]T, 0, f.classes[k].size)
}

// put keeps s for a later get, in the largest class it can serve. Its elements must
// hold no references any more (clear them), and nothing may use s after put. A
// slice smaller than the smallest class or more than twice the largest is left to
// the garbage collector, and so is one whose list is full.
func (f *freeList[T]) put(s []T) {
	c := cap(s)
	last := len(f.classes) - 1
	if c < f.classes[0].size || c > 2*f.classes[last].size {
		return
	}
	k := last
	for c < f.classes[k].size {
		k--
	}
	select {
	case f.classes[k].free <- s[:0]:
	default:
	}
}

// bufs are the read and write buffers: together at most about 22 MiB, reached only
// when that many reads and batches are in flight at once.
var bufs = newFreeList[byte](
	[]int{512, 4 << 10, 32 << 10, 256 << 10, 2 << 20},
	[]int{4096, 512, 64, 16, 4},
)

// readBufSize is the size of a read buffer: what one read call takes from a socket
// at most. smallReadBufSize is the event loop's first read of a round on a
// connection that is not busy (pollconn.go).
const (
	readBufSize      = 32 << 10
	smallReadBufSize = 4 << 10
)

// getReadBuf returns a buffer of readBufSize bytes to read into; give it back with
// bufs.put once nothing decoded from it is used any more (see framer).
func getReadBuf() []byte { return bufs.get(readBufSize)[:readBufSize] }
