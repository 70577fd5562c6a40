package collectors

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"time"

	"livedash/config"
)

// netDev is one interface of /proc/net/dev (the counters livedash reports).
type netDev struct {
	device                               string
	rxBytes, rxPackets, rxErrors, rxDrop uint64
	txBytes, txPackets, txErrors, txDrop uint64
}

// parseNetDev parses /proc/net/dev: two header lines, then
// "  eth0: rx_bytes rx_packets rx_errs rx_drop fifo frame compressed multicast tx_bytes tx_packets tx_errs tx_drop ...".
func parseNetDev(data []byte, dst []netDev) ([]netDev, error) {
	dst = dst[:0]
	var v [12]uint64
	err := lines(data, func(line []byte) error {
		name, rest, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return nil // header
		}
		name = bytes.TrimSpace(name)
		n, err := uints(rest, v[:])
		if err != nil {
			return fmt.Errorf("parse /proc/net/dev %s: %w", name, err)
		}
		if n < 12 {
			return fmt.Errorf("parse /proc/net/dev %s: %w: %d columns", name, errParse, n)
		}
		dst = append(dst, netDev{
			device:  string(name),
			rxBytes: v[0], rxPackets: v[1], rxErrors: v[2], rxDrop: v[3],
			txBytes: v[8], txPackets: v[9], txErrors: v[10], txDrop: v[11],
		})
		return nil
	})
	return dst, err
}

// networkCollector reports per interface network_{receive,transmit}_
// {bytes,packets,errors,drop}_per_second (node_exporter's
// node_network_*_total as rates). A counter that wraps (32-bit counters on
// some drivers) looks like a reset and yields no point for that tick.
type networkCollector struct {
	root    string
	exclude *regexp.Regexp
	buf     []netDev
	rates   *rates
	labels  labelSet
}

func newNetwork(c *config.Collectors, e env) ([]*job, error) {
	re, err := regexp.Compile(c.Network.DeviceExclude)
	if err != nil {
		return nil, fmt.Errorf("device_exclude: %w", err)
	}
	return []*job{{c: &networkCollector{root: e.opts.ProcRoot, exclude: re, rates: newRates()}}}, nil
}

func (c *networkCollector) collect(_ context.Context, now time.Time) ([]Sample, error) {
	data, err := readProc(c.root, "net/dev")
	if err != nil {
		return nil, err
	}
	c.buf, err = parseNetDev(data, c.buf)
	if err != nil {
		return nil, err
	}
	return c.samples(c.buf, now), nil
}

func (c *networkCollector) samples(devs []netDev, now time.Time) []Sample {
	c.rates.begin()
	defer c.rates.end()
	out := make([]Sample, 0, len(devs)*8)
	for _, d := range devs {
		if c.exclude.MatchString(d.device) {
			continue
		}
		l := c.labels.get("device", d.device, "", "", "", "")
		for _, ctr := range [...]struct {
			name string
			v    uint64
		}{
			{"network_receive_bytes_per_second", d.rxBytes},
			{"network_receive_packets_per_second", d.rxPackets},
			{"network_receive_errors_per_second", d.rxErrors},
			{"network_receive_drop_per_second", d.rxDrop},
			{"network_transmit_bytes_per_second", d.txBytes},
			{"network_transmit_packets_per_second", d.txPackets},
			{"network_transmit_errors_per_second", d.txErrors},
			{"network_transmit_drop_per_second", d.txDrop},
		} {
			if r, ok := c.rates.rate(seriesKey{name: ctr.name, a: d.device}, float64(ctr.v), now); ok {
				out = append(out, Sample{Name: ctr.name, Labels: l, Value: r})
			}
		}
	}
	return out
}
