package bolt

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"livedash/dashboard/store"
)

// crashChild appends forever and prints the ID of every frame after its
// commit returned; the parent kills it with SIGKILL.
func crashChild() {
	s, err := Open(Options{Path: os.Getenv("LIVEDASH_RING_CRASH_CHILD")})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	w := bufio.NewWriter(os.Stdout)
	fmt.Fprintf(w, "epoch %016x\n", s.Epoch())
	_ = w.Flush()
	for i := 0; ; i++ {
		bs := make([]store.Batch, 1+i%5)
		for j := range bs {
			bs[j] = batch("t"+fmt.Sprint(j), float64(i))
		}
		fs, err := s.Append(bs)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(4)
		}
		for _, f := range fs {
			fmt.Fprintln(w, f.ID.String())
		}
		_ = w.Flush()
	}
}

// A process killed (SIGKILL) while appending, 30+ times: every ID a reader
// saw is there after restart, the file checks clean, the epoch stays, seq
// continues. A commit that returned is durable whatever happens next.
// Three rounds in four kill the child 0–120 ms after its first commit of
// the round (so it is appending, however slowly the machine runs); every
// fourth kills it 30–150 ms after its start, whatever it is doing then
// (opening, checking, appending).
func TestCrashLoop(t *testing.T) {
	path := filepath.Join(t.TempDir(), "crash.db")
	var epoch string
	var seen []store.ID
	for round := range 32 {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "LIVEDASH_RING_CRASH_CHILD="+path)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 1024)
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				lines <- sc.Text()
			}
		}()
		var kill <-chan time.Time
		afterCommit := round%4 != 3
		if !afterCommit {
			kill = time.After(time.Duration(30+rand.IntN(120)) * time.Millisecond)
		}
		killed := false
		stuck := time.After(time.Minute)
		var roundIDs []store.ID
	read:
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					break read
				}
				if e, ok := strings.CutPrefix(l, "epoch "); ok {
					if epoch == "" {
						epoch = e
					} else if e != epoch {
						t.Fatalf("round %d: epoch changed from %s to %s", round, epoch, e)
					}
					continue
				}
				id, err := store.ParseID(l)
				if err != nil {
					t.Fatalf("round %d: child printed %q", round, l)
				}
				roundIDs = append(roundIDs, id)
				if afterCommit && !killed && kill == nil {
					kill = time.After(time.Duration(rand.IntN(120)) * time.Millisecond)
				}
			case <-kill:
				_ = cmd.Process.Signal(syscall.SIGKILL)
				kill, killed = nil, true
			case <-stuck:
				_ = cmd.Process.Signal(syscall.SIGKILL)
				t.Fatalf("round %d: the child committed nothing within a minute", round)
			}
		}
		_ = cmd.Wait()
		if len(roundIDs) > 0 && len(seen) > 0 && roundIDs[0].Seq != seen[len(seen)-1].Seq+1 && roundIDs[0].Seq <= seen[len(seen)-1].Seq {
			t.Fatalf("round %d: seq went back from %d to %d", round, seen[len(seen)-1].Seq, roundIDs[0].Seq)
		}
		seen = append(seen, roundIDs...)
		if _, err := os.Stat(path); err == nil { // a child killed before Open leaves no file
			checkFile(t, path)
		}
	}
	if len(seen) < 24 {
		t.Fatalf("children committed only %d frames in 24 rounds that each waited for one", len(seen))
	}
	s := openTest(t, Options{Path: path})
	if got := fmt.Sprintf("%016x", s.Epoch()); got != epoch {
		t.Fatalf("epoch %s, want %s", got, epoch)
	}
	r := s.After(store.ID{Epoch: s.Epoch(), Seq: 0}, nil, store.Limits{})
	have := map[store.ID]bool{}
	for _, f := range r.Frames {
		have[f.ID] = true
	}
	for _, id := range seen {
		if !have[id] {
			t.Fatalf("frame %v was reported committed but is gone", id)
		}
	}
	t.Logf("%d kills, %d frames seen, head %v", 32, len(seen), s.Head())
}
