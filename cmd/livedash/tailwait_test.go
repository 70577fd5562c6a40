package main

import "testing"

// waitLive waits until the tail's first stream is live: its hello was
// written. A stream without a cursor starts at the head it takes before
// queueing its hello, so frames appended from then on are its to print;
// counting the stream (Streams) is not enough, it is counted before it
// takes its position.
func (te *tailEnv) waitLive(t *testing.T) {
	t.Helper()
	waitUntil(t, "tail's stream live (its hello written)", func() bool {
		mfs, err := te.reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == "livedash_stream_bytes_sent_total" {
				return mf.GetMetric()[0].GetCounter().GetValue() > 0
			}
		}
		return false
	})
}
