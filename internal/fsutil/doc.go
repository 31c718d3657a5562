// Package fsutil holds the small file-system helpers the daemon's subsystems share (today:
// replacing a file atomically). It imports nothing of weft.
package fsutil
