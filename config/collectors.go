package config

// Collectors configures the collectors. This file is owned by the collectors
// work; config.go only embeds the type.
type Collectors struct {
	CPU Common `yaml:"cpu"`
}

// Common are the keys every collector has.
type Common struct {
	Enabled  *bool    `yaml:"enabled"`
	Interval Duration `yaml:"interval"`
	Timeout  Duration `yaml:"timeout"`
}

// defaultCollectors returns the collector defaults.
func defaultCollectors() Collectors { return Collectors{} }

// validate reports every problem of c through add, with key paths under
// "collectors.".
func (c *Collectors) validate(add func(path string, value any, reason string)) {}
