package tokenstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// Memory is a [Store] that keeps records in memory, for tests and for devices that
// sign in again after every restart. The zero value is ready to use. It also
// implements [Locker] (within the process).
type Memory struct {
	mu    sync.RWMutex
	m     map[string]*Record
	locks keyLocks
}

var (
	_ Store  = (*Memory)(nil)
	_ Locker = (*Memory)(nil)
)

// Load returns a copy of the record under key, or ErrNotFound.
func (m *Memory) Load(ctx context.Context, key string) (*Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("tokenstore: load %q: %w", key, err)
	}
	m.mu.RLock()
	r, ok := m.m[key]
	m.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("tokenstore: load %q: %w", key, ErrNotFound)
	}
	return r.Clone(), nil
}

// Save stores a copy of r under key.
func (m *Memory) Save(ctx context.Context, key string, r *Record) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("tokenstore: save %q: %w", key, err)
	}
	if r == nil {
		return errNilRecord(key)
	}
	c := r.Clone()
	m.mu.Lock()
	if m.m == nil {
		m.m = make(map[string]*Record)
	}
	m.m[key] = c
	m.mu.Unlock()
	return nil
}

// Delete removes the record under key; an absent key is not an error.
func (m *Memory) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("tokenstore: delete %q: %w", key, err)
	}
	m.mu.Lock()
	delete(m.m, key)
	m.mu.Unlock()
	return nil
}

// List returns the keys that hold a record.
func (m *Memory) List(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("tokenstore: list: %w", err)
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	keys := make([]string, 0, len(m.m))
	for k := range m.m {
		keys = append(keys, k)
	}
	return keys, nil
}

// Lock takes the in-process lock for key; see [Locker].
func (m *Memory) Lock(ctx context.Context, key string) (func() error, error) {
	unlock, err := m.locks.lock(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("tokenstore: lock %q: %w", key, err)
	}
	return func() error { unlock(); return nil }, nil
}

func errNilRecord(key string) error {
	return fmt.Errorf("tokenstore: save %q: %w", key, errors.New("nil record"))
}
