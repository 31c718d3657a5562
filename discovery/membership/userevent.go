package membership

import "fmt"

// UserEventLimit is the most bytes of name plus payload one user event may carry: Serf's
// default UserEventSizeLimit (512, so an event fits one gossip packet beside others) holds
// the encoded message, of which Serf's framing (type, Lamport time, field names) takes
// up to ~30 bytes.
const UserEventLimit = 480

// UserEvent broadcasts a user event to every member, this one included (an EventUser on
// Events). Delivery is gossip's: best effort, usually within a few gossip rounds, not to
// members that join later (Join ignores old events); a consumer that needs every member
// to converge announces what it holds in a tag and re-sends to the members that lag.
func (c *Cluster) UserEvent(name string, payload []byte) error {
	if len(name)+len(payload) > UserEventLimit {
		return fmt.Errorf("user event %q: %d bytes exceed %d", name, len(name)+len(payload), UserEventLimit)
	}
	if err := c.serf.UserEvent(name, payload, false); err != nil {
		return fmt.Errorf("serf.UserEvent: %w", err)
	}
	return nil
}
