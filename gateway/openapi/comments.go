package openapi

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
)

// Comments maps a proto element (service, method, message, field, enum, enum value) by full name
// to its leading comment, trimmed. The zero value (nil) has none.
type Comments map[protoreflect.FullName]string

// ParseComments reads the comments of a serialized FileDescriptorSet that kept its source info
// (`buf build --as-file-descriptor-set`, without --exclude-source-info). The files' imports are
// resolved in protoregistry.GlobalFiles, where the generated code of the served services
// registered them.
func ParseComments(fileDescriptorSet []byte) (Comments, error) {
	var set descriptorpb.FileDescriptorSet
	if err := proto.Unmarshal(fileDescriptorSet, &set); err != nil {
		return nil, fmt.Errorf("reading the protos' comments: %w", err)
	}
	c := Comments{}
	for _, fdp := range set.GetFile() {
		fd, err := protodesc.NewFile(fdp, protoregistry.GlobalFiles)
		if err != nil {
			return nil, fmt.Errorf("reading the protos' comments: %s: %w", fdp.GetName(), err)
		}
		c.addFile(fd)
	}
	return c, nil
}

func (c Comments) addFile(fd protoreflect.FileDescriptor) {
	locs := fd.SourceLocations()
	add := func(d protoreflect.Descriptor) {
		if s := clean(locs.ByDescriptor(d).LeadingComments); s != "" {
			c[d.FullName()] = s
		}
	}
	var enums func(protoreflect.EnumDescriptors)
	enums = func(es protoreflect.EnumDescriptors) {
		for i := range es.Len() {
			e := es.Get(i)
			add(e)
			for j := range e.Values().Len() {
				add(e.Values().Get(j))
			}
		}
	}
	var messages func(protoreflect.MessageDescriptors)
	messages = func(ms protoreflect.MessageDescriptors) {
		for i := range ms.Len() {
			m := ms.Get(i)
			add(m)
			for j := range m.Fields().Len() {
				add(m.Fields().Get(j))
			}
			enums(m.Enums())
			messages(m.Messages())
		}
	}
	enums(fd.Enums())
	messages(fd.Messages())
	for i := range fd.Services().Len() {
		s := fd.Services().Get(i)
		add(s)
		for j := range s.Methods().Len() {
			add(s.Methods().Get(j))
		}
	}
}

// of returns d's comment, "" when it has none.
func (c Comments) of(d protoreflect.Descriptor) string { return c[d.FullName()] }

// clean trims a comment and the one space that starts each of its lines ("// text").
func clean(comment string) string {
	lines := strings.Split(comment, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimPrefix(strings.TrimRight(l, " \t"), " ")
	}
	return strings.TrimSpace(strings.Join(lines, "\n"))
}

// summary is the first sentence of a comment's first paragraph (the whole paragraph when it
// has no full stop), on one line.
func summary(comment string) string {
	para, _, _ := strings.Cut(comment, "\n\n")
	para = strings.Join(strings.Fields(para), " ")
	if i := strings.Index(para, ". "); i >= 0 {
		para = para[:i+1]
	}
	return para
}
