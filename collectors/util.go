package collectors

import (
	"cmp"
	"errors"
	"maps"
	"net/url"
	"slices"

	"livedash/config"
)

func sortedKeys[M ~map[K]V, K cmp.Ordered, V any](m M) []K {
	return slices.Sorted(maps.Keys(m))
}

// redactURLError hides the secrets of the request URL in an error from an
// HTTP client (net/http masks the password only; a query token or a user
// name would reach the log and the collector's status).
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		ue.URL = config.RedactURL(ue.URL)
	}
	return err
}
