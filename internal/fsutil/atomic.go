package fsutil

import "os"

// WriteFileAtomic writes data to path through a temporary file (path + ".tmp") and a
// rename, so a reader sees the old file or the new one, never half of one. The directory
// must exist. On a failed rename the temporary file is removed.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, perm); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return nil
}
