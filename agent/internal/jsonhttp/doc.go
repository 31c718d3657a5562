// Package jsonhttp writes the control API's JSON answers for the agent's subsystems that
// serve routes of their own: indented JSON, and errors as api.Error. It may import
// agent/api only.
package jsonhttp
