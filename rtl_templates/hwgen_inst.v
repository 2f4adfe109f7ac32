// Instantiation template for ${top} (model '${model}', ${rows}x${cols} array).
// Protocol: pulse `start` while idle; stream ${n_in} input words on i__* (valid/ready);
// the core computes (${cycles} cycles predicted) and offers ${n_out} output words on o__*;
// `done` stays high from the last output word until the next start.
// Widths: activations ${width}-bit signed; cycle counters 32-bit.
${top} u_${top} (
    .clk          (clk),            // input
    .rst          (rst),            // input, synchronous, active high
    .start        (start),          // input, one-cycle pulse
    .busy         (busy),           // output
    .done         (done),           // output
    .i__payload   (in_data),        // input  [${width}-1:0]
    .i__valid     (in_valid),       // input
    .i__ready     (in_ready),       // output
    .o__payload   (out_data),       // output [${width}-1:0]
    .o__valid     (out_valid),      // output
    .o__ready     (out_ready),      // input
    .cycles       (cycles),         // output [31:0]
    .layer_sel    (layer_sel),      // input  [7:0], 0..${last_layer}
    .layer_cycles (layer_cycles)    // output [31:0]
);
