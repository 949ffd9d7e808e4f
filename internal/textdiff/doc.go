// Package textdiff renders the line difference between two texts as a
// unified diff with three lines of context, for `llorch fmt -diff`.
package textdiff
