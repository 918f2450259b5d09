package postgres

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strconv"
)

// manifestVersion is the format of manifest.json this package writes.
const manifestVersion = 1

// manifest records what StartLocal created, so that a restart brings back
// the same members on the same ports whatever the config says.
type manifest struct {
	Version  int               `json:"version"`
	Database string            `json:"database"`
	BasePort int               `json:"base_port"`
	Replicas int               `json:"replicas"`
	Conf     map[string]string `json:"conf,omitempty"`
	Shards   []manifestShard   `json:"shards"`
}

type manifestShard struct {
	ID string `json:"id"`
	// Members lists the primary first, then the replicas.
	Members []manifestMember `json:"members"`
}

type manifestMember struct {
	Name    string `json:"name"`
	Role    string `json:"role"`
	Port    int    `json:"port"`
	DataDir string `json:"data_dir"` // relative to Dir/pg
	// Slot is the physical replication slot a replica streams from on its
	// shard's primary.
	Slot string `json:"slot,omitempty"`
}

const (
	rolePrimary = "primary"
	roleReplica = "replica"
)

// newManifest lays out the cluster that a validated cfg describes.
func newManifest(cfg *LocalConfig) *manifest {
	m := &manifest{
		Version:  manifestVersion,
		Database: cfg.Database,
		BasePort: cfg.BasePort,
		Replicas: cfg.replicas(),
		Conf:     maps.Clone(cfg.Conf),
	}
	port := cfg.BasePort
	for i := 1; i <= cfg.Shards; i++ {
		id := "s" + strconv.Itoa(i)
		s := manifestShard{ID: id}
		name := id + "-primary"
		s.Members = append(s.Members, manifestMember{Name: name, Role: rolePrimary, Port: port, DataDir: name})
		port++
		for j := 1; j <= cfg.replicas(); j++ {
			name := id + "-replica" + strconv.Itoa(j)
			s.Members = append(s.Members, manifestMember{
				Name: name, Role: roleReplica, Port: port, DataDir: name,
				Slot: id + "_replica" + strconv.Itoa(j),
			})
			port++
		}
		m.Shards = append(m.Shards, s)
	}
	return m
}

// readManifest reads path; it returns nil and no error when there is none.
func readManifest(path string) (*manifest, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: read manifest: %w", err)
	}
	var m manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("postgres: manifest %s: %w", path, err)
	}
	if err := m.check(); err != nil {
		return nil, fmt.Errorf("postgres: manifest %s: %w", path, err)
	}
	return &m, nil
}

// check rejects a manifest this package cannot run.
func (m *manifest) check() error {
	if m.Version != manifestVersion {
		return fmt.Errorf("version %d, this build reads version %d", m.Version, manifestVersion)
	}
	if len(m.Shards) == 0 || !isIdentifier(m.Database) {
		return fmt.Errorf("no shards or bad database %q", m.Database)
	}
	for _, s := range m.Shards {
		if len(s.Members) == 0 || s.Members[0].Role != rolePrimary {
			return fmt.Errorf("shard %s: first member is not a primary", s.ID)
		}
		for _, mm := range s.Members {
			if mm.Name == "" || mm.Port <= 0 || mm.Port > 65535 || mm.DataDir == "" ||
				filepath.IsAbs(mm.DataDir) || filepath.Clean(mm.DataDir) != filepath.Base(mm.DataDir) {
				return fmt.Errorf("shard %s: bad member %+v", s.ID, mm)
			}
		}
	}
	return nil
}

// write replaces path atomically.
func (m *manifest) write(path string) error {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("postgres: write manifest: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("postgres: write manifest: %w", err)
	}
	return nil
}
