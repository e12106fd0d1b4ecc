package tokenstore

import (
	"context"
	"sync"
)

// keyLocks is a set of per-key mutexes whose Lock honours a context.
// The zero value is ready to use.
type keyLocks struct {
	mu    sync.Mutex
	locks map[string]chan struct{}
}

func (k *keyLocks) lock(ctx context.Context, key string) (func(), error) {
	for {
		k.mu.Lock()
		if k.locks == nil {
			k.locks = make(map[string]chan struct{})
		}
		ch, held := k.locks[key]
		if !held {
			ch = make(chan struct{})
			k.locks[key] = ch
			k.mu.Unlock()
			var once sync.Once
			return func() {
				once.Do(func() {
					k.mu.Lock()
					delete(k.locks, key)
					k.mu.Unlock()
					close(ch)
				})
			}, nil
		}
		k.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}
