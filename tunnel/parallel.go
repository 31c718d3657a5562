package tunnel

import (
	"runtime"
	"sync/atomic"
	"time"

	"github.com/weftnet/weft/crypto"
)

/* Crypto across cores (fork-join inside one batch)
 *
 * A loop's batch goes through three phases: an ordered one (route, policy, keypair, send
 * counter; or receiver lookup), the AEAD of every message, and an ordered one again
 * (groups and sendmmsg; or replay window, checks and the device write). The middle phase
 * is the only one that runs in parallel, and only with helpers (Config.CryptoWorkers > 1,
 * by default when GOMAXPROCS >= 4): the batch's messages are cut into chunksPerWorker
 * chunks per worker, the loop offers the batch to idle helpers and works on it too, each
 * claims chunks through one atomic cursor, and the loop goes on once every chunk is done.
 * There is no goroutine hand-off per packet, nothing is allocated, and the order of the
 * batch on the wire and into the device is the ordered phases' order whoever sealed or
 * opened which message. With one worker (the default on 1–3 cores) each message is sealed
 * or opened as soon as the ordered phase reaches it, on the loop's own goroutine: run to
 * completion, as before.
 *
 * A helper's offer carries the batch's epoch. The cursor packs the epoch, the number of
 * chunks and the next chunk into one word, so a helper that arrives late (the batch is
 * done and the loop has started the next) sees another epoch and claims nothing, and
 * everything a helper reads before its claim succeeds is that one atomic word.
 */

const (
	// chunksPerWorker is how many chunks a shared batch is cut into for each worker: 4
	// leaves work for a helper that starts late, and a claim (one CAS) costs little
	// against a chunk (a batch of 64 messages of 1,400 bytes: 8 each with 2 workers, about
	// 7 µs of ChaCha20-Poly1305; 1 each from 16 workers).
	chunksPerWorker = 4
	// parallelMin is the fewest messages a batch needs to be shared: below, waking a
	// helper costs more than it saves.
	parallelMin = 8
	// autoParallelProcs is the GOMAXPROCS from which CryptoWorkers 0 shares batches: on
	// two or three cores the other cores already run the peer loop, the application and
	// the kernel's side of the traffic.
	autoParallelProcs = 4
	// maxCryptoWorkers bounds Config.CryptoWorkers (and the automatic choice): past a
	// batch's worth of chunks more workers find nothing to do.
	maxCryptoWorkers = 64
)

// cryptoJob is one message of a batch for the middle phase: seal (Finish a message
// ReserveAt prepared) or open (DecryptAt; the result stays in the job for the ordered
// phase after).
type cryptoJob struct {
	kp   *crypto.Keypair
	msg  []byte
	open bool
	pt   []byte // open: the plaintext, when err is nil
	err  error  // open: DecryptAt's error
}

func (j *cryptoJob) do(now time.Time) {
	if j.open {
		j.pt, j.err = j.kp.DecryptAt(j.msg, now)
		return
	}
	j.kp.Finish(j.msg)
}

// cryptoBatch is one loop's middle phase, reused for every batch.
type cryptoBatch struct {
	jobs []cryptoJob
	now  time.Time // the batch's keypair clock (DecryptAt's age check)
	per  int       // jobs per chunk

	epoch uint32        // the loop's count of shared batches; helpers get it in their offer
	cur   atomic.Uint64 // epoch<<40 | chunks<<20 | next chunk
	done  atomic.Uint32 // chunks finished
	fin   atomic.Uint32 // finRunning, finParked (the loop waits on wake), finDone
	wake  chan struct{} // a helper that finished the last chunk wakes the parked loop (cap 1)
}

// cryptoBatch.fin: whether the loop parked before the last chunk was done.
const (
	finRunning = iota
	finParked
	finDone
)

// cursor word layout: 24 bits of epoch, 20 of chunk count, 20 of next chunk.
const (
	curChunkBits = 20
	curChunkMask = 1<<curChunkBits - 1
)

func newCryptoBatch(n int) *cryptoBatch {
	return &cryptoBatch{jobs: make([]cryptoJob, 0, n), wake: make(chan struct{}, 1)}
}

// add appends a job and returns it, growing the slice once per new high-water mark.
func (b *cryptoBatch) add(kp *crypto.Keypair, msg []byte, open bool) *cryptoJob {
	b.jobs = append(b.jobs, cryptoJob{kp: kp, msg: msg, open: open})
	return &b.jobs[len(b.jobs)-1]
}

// reset forgets the batch's jobs (keeping no buffer or keypair alive).
func (b *cryptoBatch) reset() {
	clear(b.jobs)
	b.jobs = b.jobs[:0]
}

// cryptoOffer is a helper's invitation to b's batch of the given epoch.
type cryptoOffer struct {
	b     *cryptoBatch
	epoch uint32
}

// cryptoWorkers is the number of goroutines that share a batch's AEAD work (the loop
// counts as one): Config.CryptoWorkers, or by default GOMAXPROCS from autoParallelProcs
// up, and 1 (no sharing) below.
func cryptoWorkers(cfg int) int {
	if cfg > 0 {
		return cfg
	}
	if p := runtime.GOMAXPROCS(0); p >= autoParallelProcs {
		return min(p, maxCryptoWorkers)
	}
	return 1
}

// startCryptoHelpers starts the helpers (workers − 1) that take offers from every loop.
func (t *Tunnel) startCryptoHelpers() {
	n := t.workers - 1
	if n <= 0 {
		return
	}
	t.offers = make(chan cryptoOffer, 4*n)
	t.wg.Add(n)
	for range n {
		go t.routineCryptoHelper()
	}
}

// routineCryptoHelper takes offers until the tunnel stops. After each it stays awake for a
// few yields, polling for the next: under load batches come back to back, and a helper
// that has to be woken from sleep arrives when the loop has done most of the batch alone.
func (t *Tunnel) routineCryptoHelper() {
	defer t.wg.Done()
	for {
		var o cryptoOffer
		select {
		case <-t.stop:
			return
		case o = <-t.offers:
		}
		for {
			if o.b.work(o.epoch) {
				o.b.finish()
			}
			var ok bool
			for range spinYields {
				select {
				case o = <-t.offers:
					ok = true
				default:
					runtime.Gosched()
					continue
				}
				break
			}
			if !ok {
				break
			}
		}
	}
}

// runCrypto runs the middle phase of b's jobs: inline with one worker or a small batch,
// otherwise shared with the helpers. Every job is done when it returns.
func (t *Tunnel) runCrypto(b *cryptoBatch) {
	jobs := b.jobs
	if t.workers <= 1 || len(jobs) < parallelMin {
		for i := range jobs {
			jobs[i].do(b.now)
		}
		return
	}
	// About chunksPerWorker chunks for each worker: few claims, and a worker that starts
	// late (woken from sleep) still finds work.
	b.per = max(1, (len(jobs)+t.workers*chunksPerWorker-1)/(t.workers*chunksPerWorker))
	chunks := (len(jobs) + b.per - 1) / b.per
	b.epoch = (b.epoch + 1) & (1<<24 - 1)
	b.done.Store(0)
	b.fin.Store(finRunning)
	b.cur.Store(uint64(b.epoch)<<40 | uint64(chunks)<<curChunkBits)
	for range min(t.workers-1, chunks-1) {
		select {
		case t.offers <- cryptoOffer{b: b, epoch: b.epoch}:
		default: // every helper has offers waiting: the loop does more itself
		}
	}
	if !b.work(b.epoch) {
		b.wait()
	}
	t.parallelBatches.Add(1)
}

// spinYields bounds how long the loop yields, waiting for helpers to finish the chunks they
// hold, before it parks: a chunk is a few microseconds of work, parking and being woken
// costs tens on a VM.
const spinYields = 256

// wait returns once the helpers have finished the chunks they claimed (the loop has done
// the rest): yielding while they are likely to finish soon, parked on wake after that.
func (b *cryptoBatch) wait() {
	for range spinYields {
		if b.fin.Load() == finDone {
			return
		}
		runtime.Gosched()
	}
	if b.fin.CompareAndSwap(finRunning, finParked) {
		<-b.wake // the helper that finishes the last chunk wakes the loop
	}
}

// finish is called by the helper that finished the batch's last chunk: it wakes the loop
// if the loop parked.
func (b *cryptoBatch) finish() {
	if b.fin.Swap(finDone) == finParked {
		b.wake <- struct{}{}
	}
}

// work claims and does chunks of the batch of the given epoch until none is left. It
// reports whether its caller finished the batch's last chunk.
func (b *cryptoBatch) work(epoch uint32) bool {
	for {
		c := b.cur.Load()
		chunks := c >> curChunkBits & curChunkMask
		next := c & curChunkMask
		if uint32(c>>40) != epoch || next >= chunks {
			return false // another batch, or every chunk claimed
		}
		if !b.cur.CompareAndSwap(c, c+1) {
			continue
		}
		// The chunk is ours: the loop waits for it, so the batch stays as it is.
		lo := int(next) * b.per
		hi := min(lo+b.per, len(b.jobs))
		for i := lo; i < hi; i++ {
			b.jobs[i].do(b.now)
		}
		if b.done.Add(1) == uint32(chunks) {
			return true
		}
	}
}
