// Command tapedeck records WebRTC calls as raw tracks and renders them
// afterwards. Run `tapedeck --help` for the commands.
package main

import "os"

func main() {
	os.Exit(run(os.Args[1:]))
}
