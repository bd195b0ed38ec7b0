package capture

import (
	"math/rand"
	"testing"
	"time"

	"github.com/pion/rtp"
)

func pkt(seq uint16) *rtp.Packet {
	return &rtp.Packet{Header: rtp.Header{SequenceNumber: seq, Timestamp: uint32(seq) * 3000}, Payload: []byte{byte(seq)}}
}

// drainAll pops everything due at now and returns the sequence numbers.
func popAll(j *Jitter, now time.Time) (seqs []uint16, lost int) {
	var r Released
	for j.Pop(now, &r) {
		seqs = append(seqs, r.Packet.SequenceNumber)
		lost += r.LostBefore
	}
	return seqs, lost
}

func TestJitterReordersAndDropsDuplicates(t *testing.T) {
	j := NewJitter(100 * time.Millisecond)
	t0 := time.Unix(1000, 0)
	order := []uint16{10, 12, 11, 11, 13, 10, 15, 14}
	var got []uint16
	for i, s := range order {
		j.Push(pkt(s), t0.Add(time.Duration(i)*time.Millisecond))
		seqs, _ := popAll(j, t0.Add(time.Duration(i)*time.Millisecond))
		got = append(got, seqs...)
	}
	seqs, _ := popAll(j, t0.Add(time.Second))
	got = append(got, seqs...)
	want := []uint16{10, 11, 12, 13, 14, 15}
	if len(got) != len(want) {
		t.Fatalf("released %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("released %v, want %v", got, want)
		}
	}
	st := j.Stats()
	if got, want := st.Duplicates, int64(2); got != want {
		t.Errorf("duplicates = %d, want %d", got, want)
	}
	if got, want := st.Lost, int64(0); got != want {
		t.Errorf("lost = %d, want %d", got, want)
	}
}

func TestJitterDeclaresLossAfterLatency(t *testing.T) {
	j := NewJitter(100 * time.Millisecond)
	t0 := time.Unix(1000, 0)
	// The first packet waits one latency for packets sent before it.
	j.Push(pkt(0), t0.Add(-time.Second))
	if seqs, _ := popAll(j, t0.Add(-time.Second)); len(seqs) != 0 {
		t.Fatalf("first packet released at once: %v", seqs)
	}
	if seqs, _ := popAll(j, t0); len(seqs) != 1 {
		t.Fatalf("first packet not released after the latency: %v", seqs)
	}
	j.Push(pkt(1), t0)
	j.Push(pkt(4), t0)
	seqs, _ := popAll(j, t0.Add(50*time.Millisecond))
	if len(seqs) != 1 || seqs[0] != 1 {
		t.Fatalf("before latency released %v, want [1]", seqs)
	}
	seqs, lost := popAll(j, t0.Add(100*time.Millisecond))
	if len(seqs) != 1 || seqs[0] != 4 || lost != 2 {
		t.Fatalf("after latency released %v lost %d, want [4] lost 2", seqs, lost)
	}
	// A packet that shows up after its place was given up is late, not written.
	j.Push(pkt(2), t0.Add(120*time.Millisecond))
	if seqs, _ := popAll(j, t0.Add(130*time.Millisecond)); len(seqs) != 0 {
		t.Fatalf("late packet released: %v", seqs)
	}
	st := j.Stats()
	if got, want := st.Late, int64(1); got != want {
		t.Errorf("late = %d, want %d", got, want)
	}
	if got, want := st.Lost, int64(2); got != want {
		t.Errorf("lost = %d, want %d", got, want)
	}
}

func TestJitterSequenceWrap(t *testing.T) {
	j := NewJitter(50 * time.Millisecond)
	t0 := time.Unix(1000, 0)
	var got []uint16
	for i, s := range []uint16{65533, 65535, 65534, 0, 2, 1, 3} {
		at := t0.Add(time.Duration(i) * 30 * time.Millisecond)
		j.Push(pkt(s), at)
		seqs, _ := popAll(j, at)
		got = append(got, seqs...)
	}
	seqs, _ := popAll(j, t0.Add(time.Second))
	got = append(got, seqs...)
	want := []uint16{65533, 65534, 65535, 0, 1, 2, 3}
	if len(got) != len(want) {
		t.Fatalf("released %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("released %v, want %v", got, want)
		}
	}
}

// TestJitterAccounting checks, over a long random stream with reordering,
// duplicates and loss, that every packet is either released once or counted
// as lost, duplicate or late.
func TestJitterAccounting(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	j := NewJitter(80 * time.Millisecond)
	t0 := time.Unix(1000, 0)
	const n = 20000
	type arrival struct {
		seq uint16
		at  time.Time
	}
	var arr []arrival
	sent := map[uint16]bool{}
	firstSent, lastSent := -1, 0
	for i := 0; i < n; i++ {
		if rng.Float64() < 0.03 {
			continue // lost on the network
		}
		if firstSent < 0 {
			firstSent = i
		}
		lastSent = i
		seq := uint16(i + 60000) // wraps
		at := t0.Add(time.Duration(i)*2*time.Millisecond + time.Duration(rng.Intn(40))*time.Millisecond)
		arr = append(arr, arrival{seq, at})
		sent[seq] = true
		if rng.Float64() < 0.02 {
			arr = append(arr, arrival{seq, at.Add(5 * time.Millisecond)}) // RTX duplicate
		}
	}
	// Deliver in arrival order.
	for i := 1; i < len(arr); i++ {
		for k := i; k > 0 && arr[k].at.Before(arr[k-1].at); k-- {
			arr[k], arr[k-1] = arr[k-1], arr[k]
		}
	}
	released := map[uint16]int{}
	var last uint64
	var r Released
	for _, a := range arr {
		j.Push(pkt(a.seq), a.at)
		for j.Pop(a.at, &r) {
			if r.Seq <= last && last != 0 {
				t.Fatalf("released %d after %d", r.Seq, last)
			}
			last = r.Seq
			released[r.Packet.SequenceNumber]++
		}
	}
	for j.Drain(&r) {
		released[r.Packet.SequenceNumber]++
	}
	for seq, c := range released {
		if c != 1 {
			t.Fatalf("seq %d released %d times", seq, c)
		}
		if !sent[seq] {
			t.Fatalf("seq %d released but never sent", seq)
		}
	}
	st := j.Stats()
	if got, want := st.Released, int64(len(released)); got != want {
		t.Errorf("released counter = %d, want %d", got, want)
	}
	if got, want := st.Received, int64(len(arr)); got != want {
		t.Errorf("received = %d, want %d", got, want)
	}
	if got, want := st.Released+st.Duplicates+st.Late, st.Received; got != want {
		t.Errorf("released+duplicates+late = %d, want received %d", got, want)
	}
	if got, want := int64(len(released))+st.Lost, int64(lastSent-firstSent+1); got != want {
		t.Errorf("released+lost = %d, want %d sequence numbers", got, want)
	}
}
