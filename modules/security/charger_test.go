package security_test

import (
	"maps"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/meshkit/meshkit/internal/attempt"
	"github.com/meshkit/meshkit/internal/clientip"
)

// addressCharger is the tests' attempt.Charger: each client address may be
// charged burst times, then every charge is refused with retryAfter for the
// rest of the test (a rate limiter's bucket that never refills). It counts
// what it granted and refused by address.
type addressCharger struct {
	burst      int
	retryAfter time.Duration

	mu      sync.Mutex
	granted map[string]int
	refused map[string]int
}

var _ attempt.Charger = (*addressCharger)(nil)

func newAddressCharger(burst int) *addressCharger {
	return &addressCharger{burst: burst, retryAfter: time.Minute, granted: map[string]int{}, refused: map[string]int{}}
}

// Charge takes one of the burst of c's client address.
func (ch *addressCharger) Charge(c *gin.Context) (bool, time.Duration, error) {
	addr := clientip.Of(c)
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.granted[addr] >= ch.burst {
		ch.refused[addr]++
		return false, ch.retryAfter, nil
	}
	ch.granted[addr]++
	return true, 0, nil
}

// counts returns the charges granted and refused so far, by address.
func (ch *addressCharger) counts() (granted, refused map[string]int) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return maps.Clone(ch.granted), maps.Clone(ch.refused)
}
