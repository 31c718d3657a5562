package config

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
)

// Error is one problem of a configuration: the YAML key it is about, the line of the file
// that gave that key (0 when the value came from a flag or the defaults), and what to fix.
// Resolve, Validate, Check and LoadConfig return every problem they find at once, joined
// (errors.Join); Problems takes them apart again.
type Error struct {
	// Key is the dotted YAML key, with [i] for an entry of a list: "mode", "gossip.retry_max",
	// "peers[0]", "dns.listen[1]". For an unknown key, the key as written.
	Key string
	// Line is the file's line of Key; 0 when the value did not come from a file.
	Line int
	// Err says what is wrong and what to do; its text names Key.
	Err error
}

// Error is Err's text, after "line N: " when the line is known and the text does not
// already say it (peers and services say "peers[0] (line 2): …").
func (e *Error) Error() string {
	msg := e.Err.Error()
	if e.Line > 0 && !strings.Contains(msg, fmt.Sprintf("(line %d)", e.Line)) && !strings.HasPrefix(msg, fmt.Sprintf("line %d:", e.Line)) {
		return "line " + strconv.Itoa(e.Line) + ": " + msg
	}
	return msg
}

// Unwrap returns Err.
func (e *Error) Unwrap() error { return e.Err }

// Problems returns the problems err holds, in the order they were found: every *Error in
// the tree of joined and wrapped errors (a file's path wrapped around them included).
func Problems(err error) []*Error {
	var out []*Error
	var walk func(error)
	walk = func(err error) {
		switch e := err.(type) {
		case nil:
		case *Error:
			out = append(out, e)
		case interface{ Unwrap() []error }:
			for _, c := range e.Unwrap() {
				walk(c)
			}
		case interface{ Unwrap() error }:
			walk(e.Unwrap())
		}
	}
	walk(err)
	return out
}

// problems collects the problems of one configuration. Each names its key; the line comes
// from the file the configuration was read from (see fileLines).
type problems struct {
	raw  *Config // as read: the lines, and the values they were given
	errs []error
}

func (p *problems) add(key string, err error) {
	p.errs = append(p.errs, &Error{Key: key, Line: p.raw.lineOf(key), Err: err})
}

func (p *problems) addf(key, format string, args ...any) { p.add(key, fmt.Errorf(format, args...)) }

func (p *problems) err() error { return errors.Join(p.errs...) }

// KnownKey reports whether key is a YAML key of Config: a setting of Settings, a list of
// records (peers, services, forward, expose) or a key inside one ("peers.public_key");
// list indexes ("peers[0]", "dns.listen[1]") are allowed.
func KnownKey(key string) bool {
	t := reflect.TypeFor[Config]()
	for _, part := range strings.Split(key, ".") {
		name, _, _ := strings.Cut(part, "[")
		for t.Kind() == reflect.Slice || t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			return false
		}
		f, ok := yamlFields(t)[name]
		if !ok {
			return false
		}
		t = f
	}
	return true
}
