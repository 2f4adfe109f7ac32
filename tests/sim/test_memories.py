from hwgen.sim.memories import MemoryImage, memory_plusargs, split_memories, write_memories

VERILOG = """module m(clk);
  reg [11:0] w [2:0];
  initial begin
    w[0] = 12'h0ab;
    w[1] = 12'd4095;
    w[2] = 12'b10;
  end
  reg [3:0] partial [1:0];
  initial begin
    partial[0] = 4'h1;
  end
endmodule
"""


def test_contents_move_to_a_file(tmp_path):
    text, images = split_memories(VERILOG)
    assert images == (MemoryImage(12, (0xAB, 4095, 2)),)
    assert "12'h0ab" not in text and "$readmemh(hwgen_mem0_path, w);" in text
    assert '$value$plusargs("hwgen_mem0=%s", hwgen_mem0_path)' in text
    # a memory whose words are not all listed keeps its initial block
    assert "    partial[0] = 4'h1;\n" in text
    paths = write_memories(images, tmp_path, "run1")
    assert paths[0].read_text() == "0ab\nfff\n002\n"
    assert memory_plusargs(paths) == [f"+hwgen_mem0={paths[0]}"]
