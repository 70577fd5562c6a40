package main

import (
	"net"
	"net/http"
	"net/url"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"livedash/dashboard/hub"
	"livedash/dashboard/store"
)

// catchUpper is a store shared by several instances: its head can be a
// moment behind a cursor another instance handed out, and CatchUp waits for
// it (see redis.Store.CatchUp).
type catchUpper interface {
	Epoch() uint64
	CatchUp(seq uint64) bool
}

// catchUpStreamer is the hub, for a shared store: before a stream resumes
// from a Last-Event-ID of this ring that is ahead of this instance, it waits
// (briefly) for the store to deliver up to it, so that a client moving to
// another instance resumes with no gap and no reset instead of being told
// its cursor is in the future. Reads after a cursor (the poll API) wait in
// the store itself.
type catchUpStreamer struct {
	*hub.Hub
	store catchUpper
}

func (c catchUpStreamer) ServeStream(ec echo.Context) error {
	r := ec.Request()
	id := r.Header.Get("Last-Event-ID")
	if id == "" {
		id = r.URL.Query().Get("lastEventId")
	}
	c.catchUp(id)
	return c.Hub.ServeStream(ec)
}

func (c catchUpStreamer) ConnServer(extra http.Header, requests prometheus.Counter) func(conn net.Conn, query, lastEventID string) {
	serve := c.Hub.ConnServer(extra, requests)
	return func(conn net.Conn, query, lastEventID string) {
		id := lastEventID
		if id == "" {
			q, _ := url.ParseQuery(query)
			id = q.Get("lastEventId")
		}
		c.catchUp(id)
		serve(conn, query, lastEventID)
	}
}

func (c catchUpStreamer) catchUp(raw string) {
	if id, err := store.ParseID(raw); err == nil && id.Epoch == c.store.Epoch() {
		c.store.CatchUp(id.Seq)
	}
}
