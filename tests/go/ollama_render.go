// Renders an Ollama TEMPLATE as Ollama does for a chat request: the template file in
// argv[1], the messages as JSON on stdin ({"Messages": [{"Role": ..., "Content": ...}]}).
// Like Ollama, system messages are also joined into .System, and consecutive messages
// of one role are merged with a blank line. Used by tests/test_export.py.
package main

import (
	"encoding/json"
	"os"
	"strings"
	"text/template"
)

type Message struct {
	Role    string
	Content string
}

func main() {
	text, err := os.ReadFile(os.Args[1])
	if err != nil {
		panic(err)
	}
	var request struct{ Messages []Message }
	if err := json.NewDecoder(os.Stdin).Decode(&request); err != nil {
		panic(err)
	}
	var system []string
	var messages []*Message
	for i := range request.Messages {
		m := request.Messages[i]
		if m.Role == "system" {
			system = append(system, m.Content)
		}
		if len(messages) > 0 && messages[len(messages)-1].Role == m.Role {
			messages[len(messages)-1].Content += "\n\n" + m.Content
		} else {
			messages = append(messages, &m)
		}
	}
	tmpl := template.Must(template.New("modelfile").Parse(string(text)))
	data := map[string]any{"System": strings.Join(system, "\n\n"), "Messages": messages}
	if err := tmpl.Execute(os.Stdout, data); err != nil {
		panic(err)
	}
}
