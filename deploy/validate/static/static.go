// Package static tells whether an executable is statically linked, as an image without a libc
// (scratch, distroless/static) needs: an ELF file with no program interpreter and no shared
// library dependency.
package static

import (
	"debug/elf"
	"errors"
	"fmt"
)

// Check returns nil if the ELF file at path is statically linked, else what it depends on.
func Check(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var problems []error
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			problems = append(problems, errors.New("has a program interpreter (dynamically linked)"))
		}
	}
	libs, err := f.ImportedLibraries()
	if err != nil {
		return err
	}
	for _, l := range libs {
		problems = append(problems, fmt.Errorf("needs shared library %s", l))
	}
	return errors.Join(problems...)
}
