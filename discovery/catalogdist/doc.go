// Package catalogdist carries a service catalog that does not fit its member tag.
//
// A host's catalog normally rides in its catalog tag ("s", discovery/catalog's encoding,
// version 1), inside Serf's 512 bytes of node metadata: about a dozen services. A larger
// catalog (one service per container is common) is announced in the tag by a digest
// (version 2) and travels, deflated, in Serf user events; a member applies what it
// assembles only when it hashes to the digest in the owner's own tag, and asks the owner
// to send it again when it lags (a joiner, a lost event). Hosts whose catalogs fit the tag
// cost exactly what they did before. The wire format and the bounds are in codec.go and
// dist.go.
//
// It may import discovery/catalog and discovery/membership, and nothing of the agent.
package catalogdist
