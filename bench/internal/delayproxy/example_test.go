package delayproxy_test

import (
	"bufio"
	"fmt"
	"net"
	"time"

	"github.com/devicemail/devicemail/bench/internal/delayproxy"
)

func ExampleProxy() {
	// A server that greets and closes.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	go func() {
		c, _ := ln.Accept()
		c.Write([]byte("220 ready\n"))
		c.Close()
	}()

	p := &delayproxy.Proxy{Target: ln.Addr().String(), Delay: 2 * time.Millisecond}
	if err := p.Start(); err != nil {
		panic(err)
	}
	c, _ := net.Dial("tcp", p.Addr())
	line, _ := bufio.NewReader(c).ReadString('\n')
	c.Close()
	p.Close()
	fmt.Print(line)
	fmt.Println("round trips:", p.Stats().RoundTrips())
	// Output:
	// 220 ready
	// round trips: 2
}
