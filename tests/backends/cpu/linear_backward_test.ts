/**
 * The CPU backend's linear-attention backward pass against the float64 reference.
 * @module
 */
import { createBackend } from "../../../backends/create_backend.ts";
import { linearBackwardTests } from "../../_linear_backward_properties.ts";

const cpu = await createBackend("cpu");
linearBackwardTests(cpu, "cpu", 150);
