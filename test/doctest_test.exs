defmodule TimelessMetrics.DoctestTest do
  use ExUnit.Case, async: true

  doctest TimelessMetrics.Points
  doctest TimelessMetrics.Matchers
  doctest TimelessMetrics.Options
  doctest TimelessMetrics.OptionCheck
  doctest TimelessMetrics.WireFormats
end
