package keystore

import "go.uber.org/zap"

// Describer is a store that can say where it keeps its data, for the line
// aiproxy logs at start. The fields never hold a password.
type Describer interface {
	Describe() []zap.Field
}

// Describe gives the database file's path. Valid after Provision.
func (s *FileStore) Describe() []zap.Field {
	if s.file == nil {
		return []zap.Field{zap.String("path", s.Path)}
	}
	return []zap.Field{zap.String("path", s.file.path)}
}

// Describe gives the addresses dialed, the key prefix, and the database,
// Sentinel master and TLS when set: never the username or password.
func (s *RedisStore) Describe() []zap.Field {
	conn, prefix, err := s.resolve()
	if err != nil {
		return []zap.Field{zap.Error(err)}
	}
	fields := []zap.Field{zap.Strings("addresses", conn.Addrs), zap.String("key_prefix", prefix)}
	if conn.DB != 0 {
		fields = append(fields, zap.Int("db", conn.DB))
	}
	if conn.MasterName != "" {
		fields = append(fields, zap.String("master_name", conn.MasterName))
	}
	if conn.TLS {
		fields = append(fields, zap.Bool("tls", true))
	}
	return fields
}

// Interface guards
var (
	_ Describer = (*FileStore)(nil)
	_ Describer = (*RedisStore)(nil)
)
